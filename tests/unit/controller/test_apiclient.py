"""The operator's own REST client: credentials from a pod or a kubeconfig, and its requests, against
a loopback HTTP server that records what arrives."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from gpupool.controller.apiclient import (
    ApiClient,
    ApiError,
    ConfigError,
    Credentials,
    in_cluster_credentials,
    kubeconfig_credentials,
    load_credentials,
)

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _kubeconfig(path: Path, current: str | None, clusters: dict[str, Any], users: dict[str, Any]) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": c} for name, c in clusters.items()],
        "users": [{"name": name, "user": u} for name, u in users.items()],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": f"ns-{name}"}}
            for name in clusters
        ],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


class TestKubeconfig:
    def test_files_merge_as_kubectl_merges_them(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "a").mkdir()
        first = _kubeconfig(
            tmp_path / "a" / "config",
            "dev",
            {"dev": {"server": "https://dev:6443/", "certificate-authority": "ca.crt"}},
            {"dev": {"client-certificate": "dev.crt", "client-key": "/abs/dev.key"}},
        )
        # The second file's current-context and its own "dev" lose to the first's.
        second = _kubeconfig(
            tmp_path / "config2",
            "prod",
            {"dev": {"server": "https://other:6443"}, "prod": {"server": "https://prod"}},
            {"dev": {"token": "t"}, "prod": {"token": "p"}},
        )
        monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
        creds = kubeconfig_credentials()
        assert creds.server == "https://dev:6443"
        assert creds.ca_file == str(tmp_path / "a" / "ca.crt")  # relative to the file naming it
        assert (creds.cert_file, creds.key_file) == (str(tmp_path / "a" / "dev.crt"), "/abs/dev.key")
        assert creds.token is None and creds.namespace == "ns-dev"

    def test_data_fields_are_decoded(self, tmp_path: Path) -> None:
        encoded = base64.b64encode(PEM.encode()).decode()
        path = _kubeconfig(
            tmp_path / "config",
            "c",
            {
                "c": {
                    "server": "https://c",
                    "certificate-authority-data": encoded,
                    "insecure-skip-tls-verify": True,
                }
            },
            {"c": {"client-certificate-data": encoded, "client-key-data": encoded}},
        )
        creds = kubeconfig_credentials(str(path))
        assert creds.ca_data == PEM and creds.cert_data == PEM and creds.key_data == PEM
        assert creds.insecure

    @pytest.mark.parametrize(
        ("current", "clusters", "users", "says"),
        [
            (None, {"c": {"server": "https://c"}}, {"c": {}}, "sets no current-context"),
            ("nope", {"c": {"server": "https://c"}}, {"c": {}}, "context 'nope'"),
            ("c", {"c": {}}, {"c": {}}, "has no server"),
            ("c", {"c": {"server": "https://c", "certificate-authority-data": "%%%"}}, {"c": {}}, "base64"),
        ],
    )
    def test_what_is_wrong_is_named(
        self, tmp_path: Path, current: str | None, clusters: dict[str, Any], users: dict[str, Any], says: str
    ) -> None:
        path = _kubeconfig(tmp_path / "config", current, clusters, users)
        with pytest.raises(ConfigError, match=says):
            kubeconfig_credentials(str(path))

    def test_a_named_kubeconfig_that_does_not_exist_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="does not exist"):
            kubeconfig_credentials(str(tmp_path / "absent"))


class TestInCluster:
    def _account(self, tmp_path: Path) -> Path:
        (tmp_path / "token").write_text("sa-token\n")
        (tmp_path / "ca.crt").write_text(PEM)
        (tmp_path / "namespace").write_text("gpupool-system")
        return tmp_path

    def test_the_service_account_is_read(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
        creds = in_cluster_credentials(self._account(tmp_path))
        assert creds == Credentials(
            server="https://[fd00::1]:443",
            ca_file=str(tmp_path / "ca.crt"),
            token_file=str(tmp_path / "token"),
            namespace="gpupool-system",
        )

    def test_outside_a_pod_the_kubeconfig_is_used(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        path = _kubeconfig(tmp_path / "config", "c", {"c": {"server": "https://c"}}, {"c": {"token": "t"}})
        assert load_credentials(str(path), self._account(tmp_path)).server == "https://c"

    def test_in_a_pod_the_service_account_wins(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
        path = _kubeconfig(tmp_path / "config", "c", {"c": {"server": "https://c"}}, {"c": {"token": "t"}})
        (tmp_path / "sa").mkdir()
        assert load_credentials(str(path), self._account(tmp_path / "sa")).server == "https://10.0.0.1:443"


# --------------------------------------------------------------------------------------------------
# requests


class Recorder(ThreadingHTTPServer):
    """Answers each request with the next of `answers` (status, body), recording what came."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []
        self.answers: list[tuple[int, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": self.rfile.read(length) if length else b"",
            }
        )
        status, body = self.server.answers.pop(0) if self.server.answers else (200, b"{}")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()


def test_a_request_carries_the_token_the_body_and_the_query(server: Recorder) -> None:
    server.answers = [(200, b'{"kind": "Deployment"}')]
    api = ApiClient(Credentials(server=server.url, token="s3cret"), "gpupool-operator/test")
    answer = api.request(
        "PATCH",
        "/apis/apps/v1/namespaces/ns/deployments/chat",
        body={"spec": {"replicas": 2}},
        query=[("fieldManager", "gpupool"), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )
    assert answer == {"kind": "Deployment"}
    (seen,) = server.seen
    assert (seen["method"], seen["path"]) == (
        "PATCH",
        "/apis/apps/v1/namespaces/ns/deployments/chat?fieldManager=gpupool&force=true",
    )
    assert seen["headers"]["Authorization"] == "Bearer s3cret"
    assert seen["headers"]["User-Agent"] == "gpupool-operator/test"
    assert seen["headers"]["Content-Type"] == "application/apply-patch+yaml"
    assert json.loads(seen["body"]) == {"spec": {"replicas": 2}}


def test_an_answer_outside_2xx_is_an_api_error_with_its_body(server: Recorder) -> None:
    refusal = {"kind": "Status", "message": 'Deployment "chat" is invalid', "code": 422}
    server.answers = [(422, json.dumps(refusal).encode()), (200, b"")]
    api = ApiClient(Credentials(server=server.url, username="u", password="p"), "ua")
    with pytest.raises(ApiError) as caught:
        api.request("POST", "/api/v1/namespaces/ns/events", body={})
    assert caught.value.status == 422
    assert caught.value.reason == "Unprocessable Entity"
    assert json.loads(caught.value.body or "")["message"] == 'Deployment "chat" is invalid'
    assert server.seen[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert api.request("DELETE", "/api/v1/namespaces/ns/pods/p") is None  # an empty answer


def test_a_rotated_token_file_is_read_again_after_a_401(server: Recorder, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")
    api = ApiClient(Credentials(server=server.url, token_file=str(token)), "ua")
    api.request("GET", "/api/v1")
    token.write_text("new\n")
    server.answers = [(401, b'{"reason": "Unauthorized"}'), (200, b"{}")]
    api.request("GET", "/api/v1")
    assert [s["headers"]["Authorization"] for s in server.seen] == ["Bearer old", "Bearer old", "Bearer new"]


def test_a_401_with_a_fixed_token_is_not_tried_again(server: Recorder) -> None:
    server.answers = [(401, b"{}")]
    api = ApiClient(Credentials(server=server.url, token="t"), "ua")
    with pytest.raises(ApiError, match="401"):
        api.request("GET", "/api/v1")
    assert len(server.seen) == 1


def _plugin(tmp_path: Path, body: str) -> dict[str, Any]:
    script = tmp_path / "plugin.py"
    script.write_text(textwrap.dedent(body))
    return {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": [str(script)]}


def test_an_exec_plugin_gives_the_token_and_runs_again_after_a_401(server: Recorder, tmp_path: Path) -> None:
    plugin = _plugin(
        tmp_path,
        """
        import json, os, pathlib
        runs = pathlib.Path("runs")
        n = int(runs.read_text()) + 1 if runs.exists() else 1
        runs.write_text(str(n))
        asked = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
        assert asked["kind"] == "ExecCredential", asked
        print(json.dumps({"apiVersion": asked["apiVersion"], "kind": "ExecCredential",
                          "status": {"token": f"exec-{n}", "expirationTimestamp": "2999-01-01T00:00:00Z"}}))
        """,
    )
    api = ApiClient(Credentials(server=server.url, exec_plugin=plugin, base_dir=str(tmp_path)), "ua")
    api.request("GET", "/api/v1")
    api.request("GET", "/api/v1")  # not expired: the plugin is not run again
    server.answers = [(401, b"{}"), (200, b"{}")]
    api.request("GET", "/api/v1")
    assert [s["headers"]["Authorization"] for s in server.seen] == [
        "Bearer exec-1",
        "Bearer exec-1",
        "Bearer exec-1",
        "Bearer exec-2",
    ]
    info = api.connection_info()
    assert info["token"] == "exec-3" and info["expiration"].year == 2999
    kopf.ConnectionInfo(**info)  # kopf accepts what the login handler gives it


def test_an_exec_plugin_that_fails_is_named_with_its_last_words(server: Recorder, tmp_path: Path) -> None:
    plugin = _plugin(
        tmp_path, "import sys; print('no credentials for this cluster', file=sys.stderr); sys.exit(3)"
    )
    api = ApiClient(Credentials(server=server.url, exec_plugin=plugin), "ua")
    with pytest.raises(ConfigError, match="exited 3: no credentials for this cluster"):
        api.request("GET", "/api/v1")
    assert server.seen == []


def test_connection_info_is_what_kopf_accepts(tmp_path: Path) -> None:
    creds = Credentials(
        server="https://c", ca_data=PEM, cert_file="/c.crt", key_file="/c.key", namespace="ns"
    )
    info = ApiClient(creds, "ua").connection_info()
    connection = kopf.ConnectionInfo(**info)
    assert (connection.server, connection.ca_data, connection.certificate_path) == (
        "https://c",
        PEM,
        "/c.crt",
    )
    assert connection.default_namespace == "ns" and connection.token is None


def test_the_operator_process_runs_without_the_official_client() -> None:
    # `gpupool run` blocks the `kubernetes` package before kopf loads; kopf then logs in through
    # the operator's own handler and imports nothing of the package.
    probe = textwrap.dedent(
        """
        import sys
        from gpupool.cli import without_official_client
        without_official_client()
        import kopf
        from gpupool.controller import handlers
        from kopf._core.intents.causes import Activity
        registry = kopf.get_default_registry()
        logins = registry._activities.get_handlers(activity=Activity.AUTHENTICATION)
        print([h.fn.__module__ + "." + h.fn.__name__ for h in logins])
        print(sorted(m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes.")
                     if sys.modules[m] is not None))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    logins, imported = done.stdout.splitlines()
    assert logins == "['gpupool.controller.handlers.login']"
    assert imported == "[]"
