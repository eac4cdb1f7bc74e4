"""The end-to-end harness shared by every module: operators, namespaces, manifests, cleanup.

The `cluster` fixture (conftest.py) brings up the local control plane; the helpers here run the
operator against it and make the objects a test needs, and undo both however the test ends:

- `running_operator(...)`: `gpupool run` in a subprocess for the length of a `with` block;
- `fresh_namespaces(...)`: namespaces (with the `hf-token` Secret gated models read) that are deleted,
  and waited for, afterwards;
- `apply_sample_pools(cluster)`: the InferencePools of manifests/samples;
- `model_manifest(...)` and `condition(...)`: a ModelDeployment to apply, a condition to read;
- `get_json(...)`: an object or list as kubectl prints it, None when it is not there;
- `install_gateway_api(cluster)`, `install_inference_extension(cluster)`: the CRDs of the pinned
  Gateway API and Inference Extension releases (gateway-api.sh, inference-extension.sh);
- `local_controller(...)`: start or stop a controller the product works with (lws.sh, kueue.sh).

conftest.py turns them into the `operators` and `namespaces` fixtures for function-scoped use.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_POOLS = sorted((ROOT / "manifests" / "samples").glob("pool-*.yaml"))
GATEWAY_API_SH = ROOT / "tools" / "localcluster" / "gateway-api.sh"
INFERENCE_EXTENSION_SH = ROOT / "tools" / "localcluster" / "inference-extension.sh"
LWS_SH = ROOT / "tools" / "localcluster" / "lws.sh"
KUEUE_SH = ROOT / "tools" / "localcluster" / "kueue.sh"
ROUTE_CRD = "httproutes.gateway.networking.k8s.io"
GATEWAY_CRDS = (
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    ROUTE_CRD,
    "referencegrants.gateway.networking.k8s.io",
)
INFERENCE_EXTENSION_CRDS = (
    "inferencepools.inference.networking.k8s.io",
    "inferenceobjectives.inference.networking.x-k8s.io",
)


@contextmanager
def running_operator(
    cluster: Any, log_dir: Path, kubeconfig: str | None = None, **options: Any
) -> Iterator[OperatorProcess]:
    """The operator, started (it answers /healthz) and stopped when the block ends.

    `options` go to OperatorProcess: resync_seconds, extra_env, extra_args.
    """
    process = OperatorProcess(kubeconfig or str(cluster.kubeconfig), log_dir, **options)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def fresh_namespaces(cluster: Any, *names: str, models: bool = True) -> Iterator[list[str]]:
    """Namespaces that exist for the block and are deleted, and waited for, after it.

    models: give each the `hf-token` Secret that the gated Llama samples' pods read.
    """
    made: list[str] = []
    try:
        for name in names:
            if models:
                cluster.create_model_namespace(name)
            else:
                cluster.kubectl("create", "namespace", name)
            made.append(name)
        yield made
    finally:
        for name in made:
            cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)


def install_gateway_api(cluster: Any) -> None:
    """The Gateway API's CRDs of the pinned release (tools/localcluster/gateway-api.sh caches them)."""
    crds = subprocess.run([str(GATEWAY_API_SH)], capture_output=True, text=True, check=True, timeout=600)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds.stdout.strip())
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in GATEWAY_CRDS)
    )


def install_inference_extension(cluster: Any) -> None:
    """The Gateway API Inference Extension's InferencePool and InferenceObjective CRDs of the pinned
    release (tools/localcluster/inference-extension.sh caches them)."""
    crds = subprocess.run(
        [str(INFERENCE_EXTENSION_SH)], capture_output=True, text=True, check=True, timeout=600
    )
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds.stdout.strip())
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{c}" for c in INFERENCE_EXTENSION_CRDS),
    )


def apply_sample_pools(cluster: Any) -> None:
    """The sample InferencePools (manifests/samples/pool-*.yaml)."""
    for pool_file in SAMPLE_POOLS:
        cluster.kubectl("apply", "-f", str(pool_file))


def model_manifest(name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """A ModelDeployment of a small model on the H100 pool; `spec` keys replace the defaults."""
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-8b"},
        "pool": "nvidia-h100",
        "traffic": {"peakQps": 1},
    }
    body.update(spec)
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": metadata,
        "spec": body,
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    """The object's status condition of that type, {} when it has none."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def get_json(cluster: Any, *args: str) -> Any:
    """`kubectl get ARGS -o json`, parsed; None when kubectl fails (the object is not there)."""
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def local_controller(cluster: Any, script: Path, command: str) -> None:
    """`script start|stop` (LWS_SH, KUEUE_SH) against this cluster: a controller built from its Go
    module at a pinned release, started (and its CRDs and webhooks installed) or stopped."""
    env = {**cluster.env(), "GPUPOOL_CLUSTER_DIR": str(cluster.state_dir)}
    result = subprocess.run(
        [str(script), command], env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    assert result.returncode == 0, f"{script.name} {command} failed:\n{result.stdout}{result.stderr}"
