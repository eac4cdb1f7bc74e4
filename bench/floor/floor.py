"""The API server's floor for the operator benchmark, from Python: build it, feed it, run it.

The floor (`main.go` beside this file) is a minimal client-go controller that makes exactly the
writes a new ModelDeployment needs. It decides nothing: `render_models` asks gpupool itself what
the operator would write for each model (the objects with their applied-hash annotation, the
status and the first event), and the floor sends those bodies. A model's uid is not known before
it is created, so the objects carry `PLACEHOLDER_UID` in their owner references and the floor puts
the stored model's uid there; the status's generation likewise.

The binary is built once per source and Go version into the shared cache
(`$GPUPOOL_CACHE`, default `~/.cache/gpupool`, as `floor-<hash>/floor`).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpupool.api.conditions import now_rfc3339
from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.controller.kube import with_applied_hash
from gpupool.manifests import parse_object
from gpupool.services.modeldeployment import PoolContext, decide

FLOOR_DIR = Path(__file__).resolve().parent
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
USER_AGENT = "gpupool-floor"


class FloorError(RuntimeError):
    """The floor could not be built, started or stopped cleanly."""


def _go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None)
    if found is None:
        raise FloorError("Go toolchain not found (need `go` on PATH or in /usr/local/go)")
    return found


def source_hash(go: str) -> str:
    """Digest of the floor's sources, its module pins and the Go release that builds it."""
    digest = hashlib.sha256()
    for path in sorted([*FLOOR_DIR.glob("*.go"), FLOOR_DIR / "go.mod", FLOOR_DIR / "go.sum"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    digest.update(version.encode())
    return digest.hexdigest()[:12]


def build(cache_root: Path | None = None) -> Path:
    """The floor binary, built on first use; later calls return the cached one."""
    go = _go()
    root = cache_root or Path(os.environ.get("GPUPOOL_CACHE") or Path.home() / ".cache" / "gpupool")
    binary = root / f"floor-{source_hash(go)}" / "floor"
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    # Built beside its final name and renamed, so a concurrent build never leaves half a binary.
    partial = binary.parent / f".floor.{os.getpid()}"
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "."],
        cwd=FLOOR_DIR,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-buildvcs=false -mod=readonly"},
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise FloorError(f"go build of {FLOOR_DIR} failed:\n{result.stdout}{result.stderr}")
    partial.replace(binary)
    return binary


def model_body(name: str, replicas: int, namespace: str | None = None) -> dict[str, Any]:
    """The ModelDeployment the benchmark creates: a small model on the H100 sample pool."""
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "spec": {
            "model": {"name": "llama-3.1-8b"},
            "pool": "nvidia-h100",
            "tier": "P1",
            "traffic": {"peakQps": 1},
            "replicas": replicas,
        },
    }


def rendered_model(body: dict[str, Any], pool: InferencePool, now: str) -> dict[str, Any]:
    """What the operator writes for `body` as a new model of `pool`: objects, status, one event."""
    stored = json.loads(json.dumps(body))
    meta = stored.setdefault("metadata", {})
    meta.setdefault("uid", PLACEHOLDER_UID)
    meta.setdefault("generation", 1)
    md = parse_object(ModelDeployment, stored)
    outcome = decide(md, {pool.metadata["name"]: PoolContext(pool)}, {}, now)
    if not outcome.apply or not outcome.events:
        raise FloorError(f"{meta.get('namespace')}/{meta.get('name')} renders nothing to apply")
    event = outcome.events[0]
    return {
        "objects": [with_applied_hash(obj) for obj in outcome.objects],
        "status": outcome.status.to_wire(),
        "event": {"type": event.type, "reason": event.reason, "message": event.message},
    }


def render_models(bodies: Iterable[dict[str, Any]], pool: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`rendered_model` of each body, by "namespace/name", in the floor's input format."""
    parsed = parse_object(InferencePool, pool)
    now = now_rfc3339()
    return {
        f"{b['metadata']['namespace']}/{b['metadata']['name']}": rendered_model(b, parsed, now)
        for b in bodies
    }


class FloorProcess:
    """The floor binary against one cluster, handling the ModelDeployments of `namespaces`."""

    def __init__(
        self,
        binary: Path,
        kubeconfig: str,
        rendered: dict[str, dict[str, Any]],
        namespaces: list[str],
        log_dir: Path,
        workers: int = 8,
    ) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.rendered = rendered
        self.namespaces = namespaces
        self.log_dir = log_dir
        self.workers = workers
        self.process: subprocess.Popen[str] | None = None
        self.summary: dict[str, Any] = {}

    def start(self, timeout: float = 60) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=self.log_dir, prefix="floor-rendered-", suffix=".json", delete=False
        ) as f:
            json.dump(self.rendered, f)
            self.rendered_path = Path(f.name)
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "-kubeconfig",
                self.kubeconfig,
                "-rendered",
                str(self.rendered_path),
                "-namespaces",
                ",".join(self.namespaces),
                "-workers",
                str(self.workers),
                "-user-agent",
                USER_AGENT,
            ],
            stdout=subprocess.PIPE,
            stderr=(self.log_dir / "floor.log").open("a"),
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.strip() == "ready":
                    return
                if not line:
                    break
            if self.process.poll() is not None:
                break
        self.stop()
        raise FloorError(f"the floor did not start:\n{self.log_tail()}")

    def stop(self) -> dict[str, Any]:
        """Stop the floor; returns its summary: models handled, retries, requests by verb."""
        if self.process is None:
            return self.summary
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.process = None
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                self.summary = json.loads(line)
                break
        self.rendered_path.unlink(missing_ok=True)
        return self.summary

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_dir / "floor.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""
