"""`make demo`: the local control plane, gpupool running against it, and sample models sized,
placed and scaled. Unattended; prints what a platform engineer wants to see, then how to explore.

The simulated nodes (kwok) run no containers, so the operator runs as a local process against the
cluster rather than as a pod; everything it does goes through the real API server and scheduler.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("GPUPOOL_CLUSTER_DIR") or ROOT / ".cluster")
SAMPLES = ROOT / "manifests" / "samples"
NAMESPACE = "demo"
GIB = 1024**3


WEIGHTS_VOLUME = f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: demo-model-weights}}
spec:
  capacity: {{storage: 2Ti}}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {{namespace: {NAMESPACE}, name: model-weights}}
  hostPath: {{path: /srv/models}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: model-weights, namespace: {NAMESPACE}}}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: demo-model-weights
  resources: {{requests: {{storage: 2Ti}}}}
"""


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def cluster_env() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "tools/localcluster/cluster.sh"), "env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if sep and (key.startswith("GPUPOOL_") or key == "KUBECONFIG"):
            env[key] = value.strip("'\"")
    return env


class Kubectl:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.binary = env.get("GPUPOOL_KUBECTL", "kubectl")

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> str:
        result = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env, input=input, check=False
        )
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json"))


def start_operator(env: dict[str, str]) -> int:
    pid_file = STATE / "operator.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            time.sleep(1)
        except (ProcessLookupError, ValueError):
            pass
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    log = (STATE / "logs" / "operator.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpupool",
            "run",
            "--kubeconfig",
            env["KUBECONFIG"],
            "--health-address",
            "127.0.0.1:18080",
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            "18090",
        ],
        env={**env, "GPUPOOL_RESYNC_SECONDS": "15"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(process.pid))
    return process.pid


def wait(what: str, probe: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def settled(kubectl: Kubectl) -> bool:
    models = kubectl.json("modeldeployments", "-n", NAMESPACE)["items"]
    return bool(models) and all(
        condition(m, "Ready").get("reason") in {"Available", "DoesNotFit", "ScaledToZero"}
        # A limit that leaves a model no instance is settled too: Ready=False with the cap's reason.
        or condition(m, "Ready").get("reason") == condition(m, "Placed").get("reason") not in {None, "Placed"}
        for m in models
    )


def show_plans(kubectl: Kubectl) -> None:
    models = kubectl.json("modeldeployments", "-n", NAMESPACE)["items"]
    header = (
        f"{'model':<30} {'pool':<12} {'tier':<4} {'TP':>3} {'inst':>4} {'acc':>4} "
        f"{'weights':>8} {'KV':>7} {'seqs':>5} {'qps/inst':>9} {'cost/h':>8}  status"
    )
    print(header)
    print("-" * len(header))
    for m in models:
        plan = m["status"].get("plan") or {}
        mem = plan.get("memoryPerAccelerator") or {}
        cost = plan.get("costPerHour")
        print(
            f"{m['status'].get('model', '?'):<30} {pools_of(m):<12} {m['spec'].get('tier', ''):<4} "
            f"{plan.get('tensorParallel', '-'):>3} {m['status'].get('replicas', 0):>4} "
            f"{plan.get('accelerators', '-'):>4} "
            f"{mem.get('weightsBytes', 0) / GIB:>7.1f}G {mem.get('kvCacheBytes', 0) / GIB:>6.1f}G "
            f"{plan.get('maxConcurrentSequences', '-'):>5} {plan.get('qpsPerInstance') or 0:>9.2f} "
            f"{cost if cost is not None else 0:>8.2f}  {condition(m, 'Ready').get('reason', '')}"
            f", {condition(m, 'Placed').get('reason', '-')}"
        )
        if condition(m, "Degraded").get("status") == "True":
            print(f"    why: {condition(m, 'Degraded').get('message', '')}")
        elif condition(m, "Placed").get("status") == "False":
            print(f"    placed: {condition(m, 'Placed').get('message', '')}")


def pools_of(model: dict[str, Any]) -> str:
    spec = model["spec"]
    return str(spec.get("pool") or "+".join(p["name"] for p in spec.get("pools", [])))


def show_placement(kubectl: Kubectl) -> None:
    nodes = {n["metadata"]["name"]: n["metadata"].get("labels", {}) for n in kubectl.json("nodes")["items"]}
    pods = kubectl.json("pods", "-n", NAMESPACE)["items"]
    by_model: dict[str, list[str]] = {}
    for pod in pods:
        model = pod["metadata"].get("labels", {}).get("gpupool.io/model-deployment", "?")
        node = pod["spec"].get("nodeName") or "(pending)"
        kind = nodes.get(node, {}).get("gpu-type", "")
        by_model.setdefault(model, []).append(f"{node}[{kind}]" if kind else node)
    for model, where in sorted(by_model.items()):
        print(f"{model:<30} {', '.join(sorted(where))}")


def pools_counted(kubectl: Kubectl) -> bool:
    """The pools' status has caught up with the pods now running (it is recounted every 2 s)."""
    requested = 0
    for pod in kubectl.json("pods", "-n", NAMESPACE)["items"]:
        if pod["spec"].get("nodeName"):
            for container in pod["spec"]["containers"]:
                limits = container.get("resources", {}).get("limits", {})
                requested += sum(
                    int(v) for k, v in limits.items() if k.startswith(("nvidia.com/", "huawei.com/"))
                )
    pools = kubectl.json("inferencepools.gpupool.io")["items"]
    return requested == sum(p.get("status", {}).get("accelerators", {}).get("allocated", 0) for p in pools)


def show_pools(kubectl: Kubectl) -> None:
    for pool in kubectl.json("inferencepools.gpupool.io")["items"]:
        status = pool.get("status", {})
        acc = status.get("accelerators", {})
        name, accelerator = pool["metadata"]["name"], pool["spec"]["accelerator"]
        print(
            f"{name:<14} {accelerator:<12} nodes {status.get('nodes', 0):>3}  accelerators "
            f"total {acc.get('total', 0):>3} allocated {acc.get('allocated', 0):>3} "
            f"free {acc.get('free', 0):>3}"
        )
        for tier in status.get("tiers", []):
            print(
                f"    {tier['name']}: reserved {tier['reserved']:>3}, allocated {tier['allocated']:>3}, "
                f"borrowed {tier.get('borrowed', 0):>3}, pending {tier.get('pending', 0):>3}"
            )
        fits = ", ".join(
            f"TP={f['tensorParallel']}: {f['instances']}" for f in status.get("fragmentation", [])
        )
        print(f"    more instances that fit on free accelerators: {fits}")


def free_accelerators(kubectl: Kubectl, pool: str) -> int:
    status = kubectl.json("inferencepools.gpupool.io", pool).get("status", {})
    return int(status.get("accelerators", {}).get("free", 0))


def show_overflow(kubectl: Kubectl) -> None:
    """A P2 model that may run on both pools asks for a little more than the H100 pool has free:
    the H100 pool takes what it can and the rest overflows to Ascend as a Deployment of its own."""
    h100, ascend = "nvidia-h100", "ascend-910b"
    extra = min(2, free_accelerators(kubectl, ascend))
    replicas = free_accelerators(kubectl, h100) + extra
    step(
        f"a P2 model allowed on both pools asks for {replicas} one-GPU instances, {extra} more than "
        f"{h100} has free"
    )
    manifest = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "burst", "namespace": NAMESPACE},
        "spec": {
            "model": {"name": "llama-3.1-8b"},
            "pools": [{"name": h100, "priority": 10}, {"name": ascend}],
            "tier": "P2",
            "replicas": replicas,
            "traffic": {"qpsPerInstance": 5, "latencySloMs": 2000},
        },
    }
    print(kubectl("apply", "-f", "-", input=json.dumps(manifest)).strip())
    wait(
        "burst placed and ready",
        lambda: (
            (kubectl.json("mdep", "burst", "-n", NAMESPACE).get("status") or {}).get("readyReplicas")
            == replicas
        ),
        timeout=180,
    )
    md = kubectl.json("mdep", "burst", "-n", NAMESPACE)
    for share in md["status"].get("placements", []):
        print(
            f"{share['pool']:<14} {share['accelerator']:<12} TP={share['tensorParallel']} "
            f"instances {share['instances']:>3} ready {share.get('ready', 0):>3} "
            f"cost/h {share.get('costPerHour') or 0:>7.2f}  Deployment {share.get('workload')}"
        )
    placed = condition(md, "Placed")
    print(f"Placed={placed.get('status')} {placed.get('reason')}: {placed.get('message')}")
    print(kubectl("get", "deployments", "-n", NAMESPACE, "-l", "gpupool.io/model-deployment=burst"))


def main() -> int:
    step("bringing up the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    subprocess.run(["bash", str(ROOT / "tools/localcluster/cluster.sh"), "up"], check=True)
    env = cluster_env()
    kubectl = Kubectl(env)
    print(kubectl("get", "nodes", "-L", "gpu-type", "-L", "nvidia.com/gpu.product"))

    step("installing gpupool: CRDs, then the operator (a local process, logs in .cluster/logs/operator.log)")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/modeldeployments.gpupool.io",
        "crd/inferencepools.gpupool.io",
    )
    pid = start_operator(env)
    print(f"operator pid {pid}")

    step("applying the sample pools and models")
    for pool in sorted(SAMPLES.glob("pool-*.yaml")):
        print(kubectl("apply", "-f", str(pool)).strip())
    kubectl("create", "namespace", NAMESPACE, check=False)
    kubectl(
        "create",
        "secret",
        "generic",
        "hf-token",
        "-n",
        NAMESPACE,
        "--from-literal=token=hf_demo",
        check=False,
    )
    # The Ascend sample reads its weights from a PersistentVolumeClaim; a static volume stands in
    # for the shared model store a real cluster has.
    print(kubectl("apply", "-f", "-", input=WEIGHTS_VOLUME).strip())
    for sample in sorted(SAMPLES.glob("*.yaml")):
        if not sample.name.startswith("pool-"):
            print(kubectl("apply", "-n", NAMESPACE, "-f", str(sample)).strip())

    step("waiting for every model to be sized, placed and ready")
    wait("models to settle", lambda: settled(kubectl), timeout=180)
    print(kubectl("get", "modeldeployments", "-n", NAMESPACE))

    step("capacity plans (per instance: memory per accelerator, full-length sequences the KV cache holds)")
    show_plans(kubectl)
    step("where the real scheduler placed each instance")
    show_placement(kubectl)
    step("pool capacity per tier (counted from the cluster's Node and Pod objects)")
    wait("pool accounting", lambda: pools_counted(kubectl), timeout=60)
    show_pools(kubectl)

    models = kubectl.json("modeldeployments", "-n", NAMESPACE)["items"]
    target = next((m for m in models if condition(m, "Ready").get("reason") == "Available"), None)
    if target is not None:
        name = target["metadata"]["name"]
        now = target["status"]["replicas"]
        step(f"scaling {name} from {now} to {now + 1} instances through the scale subresource")
        print(kubectl("scale", f"modeldeployment/{name}", "-n", NAMESPACE, f"--replicas={now + 1}").strip())
        wait(
            "scale-up",
            lambda: kubectl.json("mdep", name, "-n", NAMESPACE)["status"].get("readyReplicas") == now + 1,
        )
        print(kubectl("get", "modeldeployment", name, "-n", NAMESPACE))
        print(
            kubectl(
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector",
                f"involvedObject.name={name}",
                "--sort-by=.lastTimestamp",
            )
        )

    show_overflow(kubectl)

    step("explore")
    kubeconfig = env["KUBECONFIG"]
    print(f"""  export KUBECONFIG={kubeconfig}
  kubectl get gpupool -A                              # every pool and model
  kubectl get modeldeployments -n {NAMESPACE} -o wide
  kubectl describe modeldeployment -n {NAMESPACE} qwen2-5-72b
  kubectl get pods -n {NAMESPACE} -o wide
  .venv/bin/gpupool plan --model llama-3.1-70b --accelerator H100-80GB --accelerator Ascend910B --peak-qps 20
  tail -f {STATE / "logs" / "operator.log"}
  make demo-down                                      # stop the operator and the cluster""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
