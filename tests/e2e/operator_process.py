"""The gpupool operator as a real process against the local control plane, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
USER_AGENT_PREFIX = "gpupool-operator/"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`gpupool run` in a subprocess, with its log, health and metrics endpoints on loopback."""

    def __init__(
        self,
        kubeconfig: str,
        log_dir: Path,
        resync_seconds: float = 5.0,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_dir / "operator.log"
        self.resync_seconds = resync_seconds
        # e.g. GPUPOOL_NAMESPACE: the namespace the operator reads Prometheus credentials from.
        self.extra_env = dict(extra_env or {})
        # e.g. --leader-elect and its settings.
        self.extra_args = list(extra_args or [])
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "GPUPOOL_RESYNC_SECONDS": str(self.resync_seconds),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpupool",
                "run",
                "--kubeconfig",
                self.kubeconfig,
                "--health-address",
                f"127.0.0.1:{self.health_port}",
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(self.metrics_port),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"operator did not become healthy in 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def resync_looks(self) -> float:
        """Models the resyncs looked at so far, queued or left alone as unchanged (/metrics)."""
        prefix = "gpupool_resync_models_total{"
        return sum(float(line.split()[-1]) for line in self.metrics().splitlines() if line.startswith(prefix))


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as err:  # the object may not exist yet
            last = err
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def audit_writes(
    audit_log: Path, since_bytes: int, user_agent_prefix: str = USER_AGENT_PREFIX
) -> list[dict[str, Any]]:
    """Write requests made by the operator, from the API server's audit log past an offset."""
    writes = []
    with audit_log.open("rb") as f:
        f.seek(since_bytes)
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("stage") != "ResponseComplete":
                continue
            if not str(entry.get("userAgent", "")).startswith(user_agent_prefix):
                continue
            if entry.get("verb") in {"create", "update", "patch", "delete", "deletecollection"}:
                writes.append(entry)
    return writes
