"""The local control plane (tools/localcluster) as seen by end-to-end tests."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tools" / "localcluster" / "cluster.sh"


class ClusterError(RuntimeError):
    """The local cluster could not be brought up or described."""


REPO = Path(__file__).resolve().parents[2]


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message carries kubectl's own output."""

    def __str__(self) -> str:
        return (
            f"kubectl {shlex.join(self.cmd[3:])} exited {self.returncode}\n"
            f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"
        )


def _run_cluster_sh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER_SH), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _parse_env(text: str) -> dict[str, str]:
    """Read the `export KEY=value` lines that `cluster.sh env` prints."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


@dataclass
class Cluster:
    """Handles to a running local cluster: paths, URL and the pinned kubectl."""

    kubeconfig: Path
    kubectl_path: Path
    audit_log: Path
    api_url: str
    state_dir: Path
    bin_dir: Path
    k8s_version: str
    started_here: bool = field(default=False, compare=False)

    @classmethod
    def from_env_output(cls, text: str, started_here: bool = False) -> Cluster:
        env = _parse_env(text)
        try:
            return cls(
                kubeconfig=Path(env["KUBECONFIG"]),
                kubectl_path=Path(env["GPUPOOL_KUBECTL"]),
                audit_log=Path(env["GPUPOOL_AUDIT_LOG"]),
                api_url=env["GPUPOOL_API_URL"],
                state_dir=Path(env["GPUPOOL_CLUSTER_DIR"]),
                bin_dir=Path(env["GPUPOOL_BIN_DIR"]),
                k8s_version=env["GPUPOOL_K8S_VERSION"],
                started_here=started_here,
            )
        except KeyError as missing:
            raise ClusterError(f"`cluster.sh env` did not print {missing}:\n{text}") from None

    # -- kubectl ---------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; raise KubectlError if check and it fails."""
        cmd = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def get_json(self, *args: str) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]]) -> str:
        """`kubectl apply` a YAML/JSON text, one object, or a list of objects."""
        if isinstance(manifest, list):
            manifest = {"apiVersion": "v1", "kind": "List", "items": manifest}
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.kubectl("apply", "-f", "-", input=text).stdout

    def install_crds(self) -> None:
        """Server-side apply gpupool's CRDs from crds/ and wait until the API serves them."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/inferencepools.gpupool.io",
            "crd/modeldeployments.gpupool.io",
        )

    def create_model_namespace(self, name: str) -> None:
        """A namespace for models, with the `hf-token` Secret the gated Llama samples read."""
        self.kubectl("create", "namespace", name)
        self.kubectl("create", "secret", "generic", "hf-token", "-n", name, "--from-literal=token=hf_test")

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster (KUBECONFIG, PATH)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def audit_offset(self) -> int:
        """Current size of the audit log, to read only what comes after it."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy; fail with the last value or error seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except Exception as err:  # the object may not exist yet
            last = err
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def is_running() -> bool:
    return _run_cluster_sh("status").returncode == 0


def describe(started_here: bool = False) -> Cluster:
    result = _run_cluster_sh("env")
    if result.returncode != 0:
        raise ClusterError(f"`cluster.sh env` failed:\n{result.stdout}{result.stderr}")
    return Cluster.from_env_output(result.stdout, started_here=started_here)


def bring_up() -> Cluster:
    """Reuse a running cluster or start one (building it if needed); never skips.

    `up` prints its progress to stderr as it goes (a cold build is long); the
    last lines are repeated in the error if it fails.
    """
    if is_running():
        return describe(started_here=False)
    proc = subprocess.Popen(
        [str(CLUSTER_SH), "up"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        lines.append(line.rstrip("\n"))
    code = proc.wait()
    if code != 0:
        tail = "\n".join(lines[-80:])
        raise ClusterError(f"`cluster.sh up` failed with exit code {code}:\n{tail}")
    return describe(started_here=True)


def tear_down() -> None:
    result = _run_cluster_sh("down")
    if result.returncode != 0:
        raise ClusterError(f"`cluster.sh down` failed:\n{result.stdout}{result.stderr}")


def h100_pool_spec(**extra: Any) -> dict[str, Any]:
    """The spec of an InferencePool over the cluster's simulated H100 nodes, plus `extra` fields."""
    return {
        "vendor": "nvidia",
        "accelerator": "H100-80GB",
        "acceleratorsPerNode": 8,
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        **extra,
    }
