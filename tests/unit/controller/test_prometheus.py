"""The Prometheus reader's credentials: from Secrets, and what a refusal says.

A stand-in Prometheus HTTP API on loopback answers; the real one is exercised end to end in
tests/e2e/test_autoscaling.py.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from gpupool.api.conditions import Reason
from gpupool.api.v1alpha1 import EngineType, PrometheusSpec
from gpupool.catalog.types import Vendor
from gpupool.controller import autoscaler
from gpupool.controller.prometheus import (
    Connection,
    CredentialsError,
    connect,
    read_pool,
)

NOW = 1_700_000_000.0


class _Prometheus(BaseHTTPRequestHandler):
    """Answers by path; checks the Authorization header when `credentials` is set."""

    credentials: ClassVar[str | None] = None
    matrix: ClassVar[list[dict[str, Any]]] = []
    vector: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []
    headers_seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        cls = type(self)
        url = urlparse(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        cls.seen.append((url.path, params))
        cls.headers_seen.append(self.headers.get("Authorization"))
        if cls.credentials is not None and self.headers.get("Authorization") != cls.credentials:
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Basic")
            self.end_headers()
            self.wfile.write(b"Unauthorized\n")
            return
        if url.path == "/api/v1/query":
            data = {"resultType": "vector", "result": cls.vector}
        else:
            data = {"resultType": "matrix", "result": cls.matrix}
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def prometheus() -> Iterator[tuple[str, type[_Prometheus]]]:
    handler = type(
        "Prometheus",
        (_Prometheus,),
        {"credentials": None, "matrix": [], "vector": [], "seen": [], "headers_seen": []},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def secrets(store: dict[str, dict[str, str]]) -> autoscaler.SecretReader:
    return store.get


# --------------------------------------------------------------------------------------------------
# credentials


def test_basic_auth_comes_from_a_secret_of_the_operator_namespace(
    prometheus: tuple[str, type[_Prometheus]],
) -> None:
    url, handler = prometheus
    handler.credentials = basic("autoscaler", "s3cret")
    spec = PrometheusSpec.model_validate({"url": url, "basicAuth": {"secretName": "prom"}})
    store = {"prom": {"username": "autoscaler", "password": "s3cret"}}
    conn = connect(spec, "gpupool-system", secrets(store))
    got = read_pool(conn, "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert got.error is None
    assert set(handler.headers_seen) == {basic("autoscaler", "s3cret")}
    # The credentials never show in the connection's repr (logs).
    assert "s3cret" not in repr(conn) and "YXV0b3NjYWxlcjpzM2NyZXQ" not in repr(conn)


def test_a_bearer_token_is_sent_as_is(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.credentials = "Bearer tok-123"
    spec = PrometheusSpec.model_validate(
        {"url": url, "bearerToken": {"secretName": "prom-token", "key": "token"}}
    )
    conn = connect(spec, "ops", secrets({"prom-token": {"token": "tok-123\n"}}))
    assert read_pool(conn, "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5).error is None


def test_a_missing_secret_or_key_says_what_to_create() -> None:
    spec = PrometheusSpec.model_validate({"url": "http://p:9090", "basicAuth": {"secretName": "prom"}})
    with pytest.raises(CredentialsError) as missing:
        connect(spec, "gpupool-system", secrets({}))
    assert missing.value.reason is Reason.PROMETHEUS_SECRET_MISSING
    message = str(missing.value)
    assert "Secret gpupool-system/prom" in message and "does not exist" in message
    assert "'username'" in message and "'password'" in message
    with pytest.raises(CredentialsError) as no_key:
        connect(spec, "gpupool-system", secrets({"prom": {"username": "a"}}))
    assert "has no key 'password'" in str(no_key.value)


def test_a_ca_bundle_that_is_not_pem_is_the_secrets_fault() -> None:
    spec = PrometheusSpec.model_validate({"url": "https://p:9090", "tls": {"caSecretName": "prom-ca"}})
    with pytest.raises(CredentialsError) as bad:
        connect(spec, "ops", secrets({"prom-ca": {"ca.crt": "not a certificate"}}))
    assert "Secret ops/prom-ca" in str(bad.value)


def test_401_is_unauthorized_and_names_the_fix(prometheus: tuple[str, type[_Prometheus]]) -> None:
    url, handler = prometheus
    handler.credentials = basic("autoscaler", "right")
    without = read_pool(Connection(url, namespace="ops"), "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert without.error_reason is Reason.PROMETHEUS_UNAUTHORIZED
    assert without.error is not None and "401 Unauthorized" in without.error
    assert (
        "set spec.prometheus.basicAuth or bearerToken" in without.error and "namespace ops" in without.error
    )
    spec = PrometheusSpec.model_validate({"url": url, "basicAuth": {"secretName": "prom"}})
    wrong = connect(spec, "ops", secrets({"prom": {"username": "autoscaler", "password": "wrong"}}))
    got = read_pool(wrong, "h100", EngineType.VLLM, Vendor.NVIDIA, NOW, 15, 5)
    assert got.error is not None and "check the credentials in Secret ops/prom" in got.error
    # One refused query is enough to know: the other signals are not tried.
    assert len(handler.seen) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"url": "http://p", "basicAuth": {"secretName": "a"}, "bearerToken": {"secretName": "b"}},
            "at most one of basicAuth and bearerToken",
        ),
        ({"url": "http://p", "tls": {"insecureSkipVerify": True}}, "https:// url"),
        (
            {"url": "https://p", "tls": {"caSecretName": "ca", "insecureSkipVerify": True}},
            "caSecretName or insecureSkipVerify",
        ),
    ],
)
def test_inconsistent_prometheus_specs_are_rejected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusSpec.model_validate(spec)
