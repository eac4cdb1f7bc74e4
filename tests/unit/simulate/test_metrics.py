"""The exposition: real metric names, valid Prometheus text, pod labels only where Prometheus adds them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gpupool.simulate.metrics import (
    TTFT_BUCKETS,
    EngineKind,
    Histogram,
    PodMetrics,
    VendorKind,
    exposition,
)


def pod(
    name: str = "chat-0001", engine: EngineKind = EngineKind.VLLM, vendor: VendorKind = VendorKind.NVIDIA
) -> PodMetrics:
    metrics = PodMetrics(
        pod=name,
        namespace="team-a",
        model="llama-3.1-8b",
        engine=engine,
        vendor=vendor,
        accelerator_model="H100-80GB",
        accelerators=2,
        memory_total_mib=81_559,
        serving=True,
        running=12,
        waiting=3,
        kv_cache_usage=0.42,
        accelerator_utilization=0.97,
        memory_used_mib=73_403,
        finished_stop=90,
        finished_length=10,
        aborted=2,
    )
    metrics.ttft = Histogram(TTFT_BUCKETS, [0, 0, 1, 5, 20, 40, 60, 80, 95, 99, *([100] * 12)], 100, 9.5)
    return metrics


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def test_vllm_and_dcgm_names_and_values() -> None:
    text = exposition([pod()])
    parsed = families(text)
    assert parsed["vllm:num_requests_running"] == [
        ("vllm:num_requests_running", {"engine": "0", "model_name": "llama-3.1-8b"}, 12.0)
    ]
    assert parsed["vllm:num_requests_waiting"][0][2] == 3.0
    assert parsed["vllm:kv_cache_usage_perc"][0][2] == 0.42
    assert parsed["vllm:gpu_cache_usage_perc"][0][2] == 0.42
    success = {s[1]["finished_reason"]: s[2] for s in parsed["vllm:request_success"]}
    assert success == {"stop": 90.0, "length": 10.0, "abort": 2.0}
    ttft = parsed["vllm:time_to_first_token_seconds"]
    buckets = [s for s in ttft if s[0].endswith("_bucket")]
    assert [b[1]["le"] for b in buckets][-1] == "+Inf" and len(buckets) == len(TTFT_BUCKETS) + 1
    assert [b[2] for b in buckets] == sorted(b[2] for b in buckets)
    assert (
        "vllm:time_to_first_token_seconds_count",
        {"engine": "0", "model_name": "llama-3.1-8b"},
        100.0,
    ) in ttft
    gpu = parsed["DCGM_FI_DEV_GPU_UTIL"]
    assert [s[2] for s in gpu] == [97.0, 97.0]  # percent, one series per accelerator
    assert gpu[0][1]["pod"] == "chat-0001" and gpu[1][1]["gpu"] == "1"
    assert parsed["DCGM_FI_DEV_FB_USED"][0][2] == 73_403
    # Engine metrics carry no pod label: Prometheus adds it when it scrapes the pod.
    assert "pod" not in parsed["vllm:num_requests_running"][0][1]


def test_help_and_type_once_per_family_across_pods() -> None:
    text = exposition([pod("a"), pod("b")], with_pod_labels=True)
    assert text.count("# TYPE vllm:num_requests_running gauge") == 1
    running = families(text)["vllm:num_requests_running"]
    assert {s[1]["pod"] for s in running} == {"a", "b"}


def test_triton_and_ascend() -> None:
    text = exposition([pod(engine=EngineKind.TRITON, vendor=VendorKind.ASCEND)])
    # Triton's counters have no _total suffix.
    assert 'nv_inference_request_success{model="llama-3.1-8b",version="1"} 100.0' in text.splitlines()
    parsed = families(text)
    assert parsed["nv_inference_request_failure"][0][2] == 2.0
    assert parsed["nv_inference_pending_request_count"][0][2] == 3.0
    assert parsed["npu_chip_info_utilization"][0][1]["pod_name"] == "chat-0001"
    assert parsed["npu_chip_info_hbm_total_memory"][0][2] == 81_559
    assert "vllm:num_requests_running" not in parsed and "DCGM_FI_DEV_GPU_UTIL" not in parsed


def test_a_loading_pod_exports_only_its_accelerators() -> None:
    loading = pod()
    loading.serving = False
    parsed = families(exposition([loading]))
    assert set(parsed) == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"}


def test_label_values_are_escaped() -> None:
    odd = pod(name='we"ird\\pod')
    parsed = families(exposition([odd], with_pod_labels=True))
    assert parsed["vllm:num_requests_waiting"][0][1]["pod"] == 'we"ird\\pod'
