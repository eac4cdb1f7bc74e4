"""The API server goes away and comes back, as the operator sees it.

The operator reaches the real kube-apiserver through a TCP relay of this test's own; cutting the
relay closes every connection and refuses new ones (what an API server restart or a network
partition looks like from the operator), while the test keeps changing the cluster directly. The
resync is ten minutes away, so convergence after the outage comes from the watches and the work
queue, not from the resync.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from harness import apply_sample_pools, fresh_namespaces, model_manifest, running_operator, unique_name
from operator_process import OperatorProcess, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
POOL_FILES = sorted((ROOT / "manifests" / "samples").glob("pool-*.yaml"))
OUTAGE_SECONDS = 20

pytestmark = pytest.mark.e2e


class Relay:
    """127.0.0.1:port -> the API server, byte for byte (TLS passes through untouched)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def outage(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cluster.install_crds()
    apply_sample_pools(cluster)
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = urlparse(config["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port
    relay = Relay((server.hostname, server.port))
    relay.start()
    work = tmp_path_factory.mktemp("outage")
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    # Pools are recounted 5 s after their Deployments change: the recount a new model asks for
    # falls inside the outage, and shows how a failing key backs off.
    try:
        with (
            running_operator(
                cluster,
                work,
                kubeconfig=str(kubeconfig),
                resync_seconds=600,
                extra_env={"GPUPOOL_POOL_ACCOUNTING_SECONDS": "5"},
            ) as operator,
            fresh_namespaces(cluster, unique_name("t"), models=False) as (namespace,),
        ):
            yield {"relay": relay, "operator": operator, "namespace": namespace}
    finally:
        relay.cut()


def replicas_of(cluster: Any, namespace: str, name: str) -> int | None:
    result = cluster.kubectl("get", "deployment", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return int(yaml.safe_load(result.stdout)["spec"]["replicas"])


def test_an_outage_backs_off_quietly_and_the_operator_converges_when_the_api_server_returns(
    cluster: Any, outage: dict[str, Any]
) -> None:
    relay: Relay = outage["relay"]
    operator: OperatorProcess = outage["operator"]
    namespace = outage["namespace"]
    cluster.apply([model_manifest("steady", namespace, model={"name": "qwen2.5-7b"}, replicas=1)])
    wait_for("steady's Deployment", lambda: replicas_of(cluster, namespace, "steady") == 1, timeout=60)

    before = operator.log_path.stat().st_size
    relay.cut()
    # Changes the operator cannot see while it is cut off: a scale of one model, a new one.
    cluster.apply(
        [
            model_manifest("steady", namespace, model={"name": "qwen2.5-7b"}, replicas=2),
            model_manifest("during", namespace, model={"name": "qwen2.5-7b"}, replicas=1),
        ]
    )
    time.sleep(OUTAGE_SECONDS)
    with operator.log_path.open("rb") as f:
        f.seek(before)
        during = f.read().decode(errors="replace").splitlines()
    returned = time.monotonic()
    relay.start()

    wait_for(
        "the scale made during the outage", lambda: replicas_of(cluster, namespace, "steady") == 2, timeout=45
    )
    wait_for(
        "the model created during the outage",
        lambda: replicas_of(cluster, namespace, "during") == 1,
        timeout=45,
    )
    converged = time.monotonic() - returned
    print(
        f"\noutage of {OUTAGE_SECONDS}s: {len(during)} log lines; converged {converged:.1f}s after the return"
    )
    assert operator.process is not None and operator.process.poll() is None, operator.log_tail()

    # Quiet: no stack traces, and a bounded trickle of lines, not a flood.
    assert not [line for line in during if "Traceback" in line], "\n".join(during[-40:])
    assert len(during) <= 3 * OUTAGE_SECONDS, "\n".join(during[-40:])
    # Each failed pass says what failed and when it is retried, in one line; the pool's recount,
    # due inside the outage, retried with a doubling delay.
    retries = [
        (int(m[1]), float(m[2]))
        for line in during
        if (
            m := re.search(
                r"InferencePool nvidia-h100 failed \(API server unreachable: .*\); retry (\d+) in ([\d.]+)s$",
                line,
            )
        )
    ]
    assert retries, "\n".join(during[-40:])
    assert [n for n, _ in retries] == list(range(1, len(retries) + 1))
    assert all(later == 2 * earlier for (_, earlier), (_, later) in itertools.pairwise(retries)), retries
    assert len(retries) <= 12  # 0.05 s doubled: about nine attempts in 20 s, not a loop
