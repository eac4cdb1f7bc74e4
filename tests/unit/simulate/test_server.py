"""The metrics server: real HTTP on loopback, Prometheus text a parser accepts."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpupool.simulate.metrics import EngineKind, PodMetrics, VendorKind
from gpupool.simulate.server import serve_in_background

PODS = [
    PodMetrics(
        pod=name,
        namespace="default",
        model="chat",
        engine=EngineKind.VLLM,
        vendor=VendorKind.NVIDIA,
        accelerator_model="H100-80GB",
        accelerators=1,
        memory_total_mib=81_559,
        serving=True,
        waiting=float(index),
    )
    for index, name in enumerate(["chat-0001", "chat-0002"])
]


@pytest.fixture
def base_url() -> Iterator[str]:
    server = serve_in_background(lambda: PODS)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def test_all_pods_with_pod_labels(base_url: str) -> None:
    status, content_type, body = get(f"{base_url}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    waiting = next(f for f in text_string_to_metric_families(body) if f.name == "vllm:num_requests_waiting")
    assert {(s.labels["pod"], s.value) for s in waiting.samples} == {("chat-0001", 0.0), ("chat-0002", 1.0)}


def test_one_pod_as_its_engine_exposes_it(base_url: str) -> None:
    status, _, body = get(f"{base_url}/pods/chat-0002/metrics")
    assert status == 200
    assert 'vllm:num_requests_waiting{engine="0",model_name="chat"} 1.0' in body.splitlines()


def test_unknown_paths_and_health(base_url: str) -> None:
    assert get(f"{base_url}/pods/nope/metrics")[0] == 404
    assert get(f"{base_url}/other")[0] == 404
    assert get(f"{base_url}/healthz")[:1] == (200,)
