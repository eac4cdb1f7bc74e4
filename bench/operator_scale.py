"""`make bench`: the operator's speed at scale, measured on a local control plane of its own.

Brings up a separate local cluster (its own state folder and ports, so a running test cluster is left
alone) with at least 250 simulated accelerator nodes, runs the real operator against it, and
measures:

- apply → Deployment latency (p50/p99) of a probe ModelDeployment with 0, 100 and 1,000
  ModelDeployments already present;
- the time for 1,000 ModelDeployments created at once to all have their Deployment and a status
  for their current generation;
- the operator's peak RSS and CPU seconds;
- the API writes the operator makes during one full no-op resync (from the API server's audit log).

Prints a table and writes JSON under results/. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from operator_process import OperatorProcess  # noqa: E402

CLUSTER_SH = ROOT / "tools" / "localcluster" / "cluster.sh"
GROUP, VERSION = "gpupool.io", "v1alpha1"
USER_AGENT = "gpupool-operator/"
PORT_ENV = {
    "GPUPOOL_APISERVER_PORT": "17443",
    "GPUPOOL_ETCD_CLIENT_PORT": "13379",
    "GPUPOOL_ETCD_PEER_PORT": "13380",
    "GPUPOOL_CONTROLLER_MANAGER_PORT": "17257",
    "GPUPOOL_SCHEDULER_PORT": "17259",
    "GPUPOOL_KWOK_PORT": "17247",
}


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state = Path(args.state_dir)
        self.env = {
            **os.environ,
            **PORT_ENV,
            "GPUPOOL_CLUSTER_DIR": str(self.state),
            "NVIDIA_NODES": str(args.nvidia_nodes),
            "ASCEND_NODES": str(args.ascend_nodes),
            "CPU_NODES": "0",
        }
        self.operator: OperatorProcess | None = None
        self.probe_log: dict[str, list[tuple[float, float]]] = {}
        self.resync_writes: list[str] = []
        self.rss_now_mib = 0.0

    # -- cluster and operator -------------------------------------------------------------------

    def cluster(self, *args: str) -> str:
        result = subprocess.run(
            ["bash", str(CLUSTER_SH), *args], env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"cluster.sh {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def kubectl(self, *args: str) -> str:
        return self.cluster("kubectl", *args)

    def up(self) -> None:
        nodes = f"{self.args.nvidia_nodes} NVIDIA and {self.args.ascend_nodes} Ascend nodes"
        log(f"bringing up a cluster with {nodes}")
        started = time.monotonic()
        self.cluster("up")
        log(f"cluster up in {time.monotonic() - started:.0f}s")
        self.kubeconfig = str(self.state / "kubeconfig")
        config.load_kube_config(config_file=self.kubeconfig)
        api = client.ApiClient()
        api.configuration.connection_pool_maxsize = 32
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.gpupool.io")
        for pool in sorted((ROOT / "manifests" / "samples").glob("pool-*.yaml")):
            self.kubectl("apply", "-f", str(pool))

    def start_operator(self) -> None:
        # The same process wrapper the end-to-end tests use: `gpupool run` on free loopback ports.
        self.operator = OperatorProcess(self.kubeconfig, self.state, resync_seconds=self.args.resync_seconds)
        self.operator.start()

    def operator_usage(self) -> tuple[float, float]:
        """Peak RSS (MiB) and CPU seconds of the operator process, from /proc."""
        assert self.operator is not None and self.operator.process is not None
        pid = self.operator.process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        hwm_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        self.rss_now_mib = (
            int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024
        )
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        return hwm_kib / 1024, cpu

    def reconciles(self) -> float:
        assert self.operator is not None
        text = self.operator.metrics()
        for line in text.splitlines():
            if line.startswith('gpupool_reconcile_total{kind="ModelDeployment"}'):
                return float(line.split()[-1])
        return 0.0

    def down(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        if not self.args.keep:
            self.cluster("down")

    # -- workload -------------------------------------------------------------------------------

    def namespace(self, name: str) -> None:
        try:
            self.core.create_namespace({"metadata": {"name": name}})
        except ApiException as err:
            if err.status != 409:
                raise

    def body(self, name: str, replicas: int) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {
                "model": {"name": "llama-3.1-8b"},
                "pool": "nvidia-h100",
                "tier": "P1",
                "traffic": {"peakQps": 1},
                "replicas": replicas,
            },
        }

    def create(self, namespace: str, name: str, replicas: int) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "modeldeployments", self.body(name, replicas)
        )

    def create_many(self, namespace: str, count: int, replicas: int) -> float:
        self.namespace(namespace)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: self.create(namespace, f"m{i:04d}", replicas), range(count)))
        return time.monotonic() - started

    def converged(self, namespace: str) -> int:
        """ModelDeployments with a Deployment and a status for their current generation."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")[
            "items"
        ]
        deployments = {d.metadata.name for d in self.apps.list_namespaced_deployment(namespace).items}
        return sum(
            1
            for m in items
            if m["metadata"]["name"] in deployments
            and (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
        )

    def wait_converged(self, namespace: str, count: int, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.converged(namespace) >= count:
                return time.monotonic() - started
            time.sleep(0.5)
        raise SystemExit(f"{namespace}: {self.converged(namespace)}/{count} converged after {timeout:.0f}s")

    def probe_latencies(self, label: str, count: int) -> list[float]:
        """apply → Deployment exists, for `count` fresh ModelDeployments, one at a time."""
        namespace = f"probe-{label}"
        self.namespace(namespace)
        latencies = []
        self.probe_log.setdefault(label, [])
        for i in range(count):
            name = f"p{i:03d}"
            started = time.monotonic()
            wall = time.time()
            self.create(namespace, name, self.args.probe_replicas)
            while True:
                try:
                    self.apps.read_namespaced_deployment(name, namespace)
                    break
                except ApiException as err:
                    if err.status != 404:
                        raise
                if time.monotonic() - started > 60:
                    raise SystemExit(f"probe {namespace}/{name}: no Deployment after 60s")
                time.sleep(0.01)
            latencies.append(time.monotonic() - started)
            self.probe_log[label].append((round(wall, 3), round(latencies[-1], 4)))
        return latencies

    def delete_namespace(self, namespace: str) -> None:
        self.core.delete_namespace(namespace)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(namespace)
            except ApiException as err:
                if err.status == 404:
                    return
            time.sleep(1)

    def noop_resync_writes(self) -> tuple[int, float]:
        """Writes by the operator while it runs one full resync over settled objects."""
        audit = self.state / "audit.log"
        time.sleep(self.args.resync_seconds)  # let in-flight work settle
        before = self.reconciles()
        total = len(self.custom.list_cluster_custom_object(GROUP, VERSION, "modeldeployments")["items"])
        offset = audit.stat().st_size
        started = time.monotonic()
        while (
            self.reconciles() - before < total and time.monotonic() - started < self.args.resync_seconds * 4
        ):
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        writes = 0
        self.resync_writes = []
        with audit.open("rb") as f:
            f.seek(offset)
            for line in f:
                entry = json.loads(line)
                if (
                    entry.get("stage") == "ResponseComplete"
                    and str(entry.get("userAgent", "")).startswith(USER_AGENT)
                    and entry.get("verb") in {"create", "update", "patch", "delete"}
                ):
                    writes += 1
                    ref = entry.get("objectRef", {})
                    self.resync_writes.append(
                        f"{entry['verb']} {ref.get('resource')}/{ref.get('subresource', '')} "
                        f"{ref.get('namespace', '')}/{ref.get('name', '')}"
                    )
        return writes, elapsed

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {
            "nodes": {"nvidia": self.args.nvidia_nodes, "ascend": self.args.ascend_nodes},
            "bulk_replicas": self.args.bulk_replicas,
            "probe_replicas": self.args.probe_replicas,
            "resync_seconds": self.args.resync_seconds,
        }
        self.up()
        self.start_operator()
        probes: dict[str, list[float]] = {}
        probes["0"] = self.probe_latencies("0", self.args.probes)
        log(f"apply->Deployment with 0 present: p50 {percentile(probes['0'], 50):.3f}s")

        self.create_many("bulk-100", 100, self.args.bulk_replicas)
        self.wait_converged("bulk-100", 100, 300)
        probes["100"] = self.probe_latencies("100", self.args.probes)
        log(f"apply->Deployment with 100 present: p50 {percentile(probes['100'], 50):.3f}s")
        self.delete_namespace("bulk-100")

        started = time.monotonic()
        create_seconds = self.create_many("bulk-1000", 1000, self.args.bulk_replicas)
        self.wait_converged("bulk-1000", 1000, 900)
        converge_seconds = time.monotonic() - started
        log(f"1000 created in {create_seconds:.1f}s, all converged after {converge_seconds:.1f}s")
        probes["1000"] = self.probe_latencies("1000", self.args.probes)
        log(f"apply->Deployment with 1000 present: p50 {percentile(probes['1000'], 50):.3f}s")

        writes, resync_seconds = self.noop_resync_writes()
        rss, cpu = self.operator_usage()
        results.update(
            {
                "apply_to_deployment_seconds": {
                    k: {
                        "p50": percentile(v, 50),
                        "p99": percentile(v, 99),
                        "mean": statistics.mean(v),
                        "n": len(v),
                    }
                    for k, v in probes.items()
                },
                "bulk_1000": {"create_seconds": create_seconds, "converged_seconds": converge_seconds},
                "noop_resync": {"writes": writes, "seconds": resync_seconds, "what": self.resync_writes},
                "operator": {"peak_rss_mib": rss, "rss_at_end_mib": self.rss_now_mib, "cpu_seconds": cpu},
                "probes": self.probe_log,
            }
        )
        return results


def table(results: dict[str, Any]) -> str:
    lat = results["apply_to_deployment_seconds"]
    rows = [
        ("simulated accelerator nodes", f"{results['nodes']['nvidia'] + results['nodes']['ascend']}", ""),
        *[
            (
                f"apply -> Deployment, {k} present (p50 / p99)",
                f"{v['p50']:.3f} s / {v['p99']:.3f} s",
                "p99 < 1 s at 1,000",
            )
            for k, v in lat.items()
        ],
        (
            "1,000 created at once: all converged",
            f"{results['bulk_1000']['converged_seconds']:.1f} s",
            "< 60 s",
        ),
        ("  of which creating them took", f"{results['bulk_1000']['create_seconds']:.1f} s", ""),
        ("operator peak RSS", f"{results['operator']['peak_rss_mib']:.0f} MiB", "< 250 MiB"),
        ("  RSS at the end", f"{results['operator']['rss_at_end_mib']:.0f} MiB", ""),
        ("operator CPU", f"{results['operator']['cpu_seconds']:.1f} s", ""),
        ("API writes in one no-op resync", f"{results['noop_resync']['writes']}", "0"),
        ("  one resync pass over every model took", f"{results['noop_resync']['seconds']:.1f} s", ""),
    ]
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'measure'.ljust(width)}{'result':>24}  target", "-" * (width + 36)]
    lines += [f"{a.ljust(width)}{b:>24}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia-nodes", type=int, default=200)
    parser.add_argument("--ascend-nodes", type=int, default=50)
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument(
        "--bulk-replicas",
        type=int,
        default=0,
        help="instances per bulk model (0 measures the operator without pod churn)",
    )
    parser.add_argument("--probe-replicas", type=int, default=1)
    parser.add_argument("--resync-seconds", type=float, default=30)
    parser.add_argument("--state-dir", default=str(ROOT / ".cluster-bench"))
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    parser.add_argument("--output", default=str(ROOT / "results" / "bench-operator.json"))
    args = parser.parse_args()
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.down()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print()
    print(table(results))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
