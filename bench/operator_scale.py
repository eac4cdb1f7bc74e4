"""`make bench`: the operator's speed at scale, measured on a local control plane of its own.

Brings up a separate local cluster (its own state folder and ports, so a running test cluster is left
alone) with at least 250 simulated accelerator nodes, runs the real operator against it, and
measures:

- apply → Deployment latency (p50/p99) of a probe ModelDeployment with 0, 100 and 1,000
  ModelDeployments already present;
- the time for 1,000 ModelDeployments created at once to all have their Deployment and a status
  for their current generation;
- the operator's peak RSS and CPU seconds;
- the API writes the operator makes during one full no-op resync (from the API server's audit log);
- the API server's floor, in the same run on the same cluster with the operator stopped: a minimal
  client-go controller (bench/floor) making only the writes each new model needs, for the same
  1,000 models and probes; the operator's convergence is stated as a ratio to it;
- the requests per new model of each: writes from the audit log by user agent, reads (single
  objects, cluster-wide lists) from the API server's request counters.

`--models 5000` measures at 5,000 models instead (and writes results/bench-operator-5000.json).
Prints a table and writes JSON under results/. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench" / "floor"))
import floor  # noqa: E402
from operator_process import OperatorProcess, audit_writes  # noqa: E402

CLUSTER_SH = ROOT / "tools" / "localcluster" / "cluster.sh"
GROUP, VERSION = "gpupool.io", "v1alpha1"
USER_AGENT = "gpupool-operator/"
# Reads of what a model's reconcile touches: single objects, and cluster-wide lists. Nothing else
# in the cluster makes these requests during a bulk phase (the controllers and kwok keep watches
# open, the benchmark lists one namespace), so the API server's counters for them are the
# reconciler's reads.
READ_RESOURCES = {
    "modeldeployments",
    "inferencepools",
    "deployments",
    "services",
    "configmaps",
    "namespaces",
    "nodes",
    "pods",
}
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
        self.floor: floor.FloorProcess | None = None
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

    def down(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        if self.floor is not None:
            self.floor.stop()
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
        return floor.model_body(name, replicas)

    def create(self, namespace: str, name: str, replicas: int) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "modeldeployments", self.body(name, replicas)
        )

    def create_many(self, namespace: str, count: int, replicas: int) -> float:
        self.namespace(namespace)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: self.create(namespace, bulk_name(i), replicas), range(count)))
        return time.monotonic() - started

    def converged(self, namespace: str) -> int:
        """ModelDeployments with a Deployment and a status for their current generation."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")[
            "items"
        ]
        # Raw JSON: building the client's model objects for a thousand Deployments takes seconds of
        # the CPU the operator (or the floor) and the API server are being measured on.
        listed = self.apps.list_namespaced_deployment(namespace, _preload_content=False)
        deployments = {d["metadata"]["name"] for d in json.loads(listed.data)["items"]}
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

    def probe_latencies(self, label: str, count: int, prefix: str = "probe") -> list[float]:
        """apply → Deployment exists, for `count` fresh ModelDeployments, one at a time."""
        namespace = f"{prefix}-{label}"
        self.namespace(namespace)
        latencies = []
        self.probe_log.setdefault(namespace, [])
        for i in range(count):
            name = probe_name(i)
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
            self.probe_log[namespace].append((round(wall, 3), round(latencies[-1], 4)))
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

    def writes_since(self, offset: int, user_agent: str) -> list[str]:
        """The writes `user_agent` made since `offset` of the audit log, one line each."""
        return [describe_write(e) for e in audit_writes(self.state / "audit.log", offset, user_agent)]

    def reads(self) -> dict[str, int]:
        return reads(self.kubectl("get", "--raw", "/metrics"))

    def noop_resync_writes(self) -> tuple[int, float]:
        """Writes by the operator while one resync looks at every settled model (it queues those
        changed since their last settled pass, and leaves the others alone)."""
        assert self.operator is not None
        time.sleep(self.args.resync_seconds)  # let in-flight work settle
        before = self.operator.resync_looks()
        total = len(self.custom.list_cluster_custom_object(GROUP, VERSION, "modeldeployments")["items"])
        offset = (self.state / "audit.log").stat().st_size
        started = time.monotonic()
        while (
            self.operator.resync_looks() - before < total
            and time.monotonic() - started < self.args.resync_seconds * 4
        ):
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        self.resync_writes = self.writes_since(offset, USER_AGENT)
        return len(self.resync_writes), elapsed

    def bulk(self, namespace: str, count: int, user_agent: str) -> dict[str, Any]:
        """Create `count` models at once and wait until all converged; what it took and cost."""
        offset = (self.state / "audit.log").stat().st_size
        reads_before = self.reads()
        started = time.monotonic()
        create_seconds = self.create_many(namespace, count, self.args.bulk_replicas)
        self.wait_converged(namespace, count, max(900, count * 0.9))
        converged_seconds = time.monotonic() - started
        reads_after = self.reads()
        writes = self.writes_since(offset, user_agent)
        read_count = {
            k: v - reads_before.get(k, 0) for k, v in reads_after.items() if v > reads_before.get(k, 0)
        }
        log(
            f"{namespace}: {count} created in {create_seconds:.1f}s, "
            f"all converged after {converged_seconds:.1f}s"
        )
        return {
            "create_seconds": create_seconds,
            "converged_seconds": converged_seconds,
            "writes_per_model": len(writes) / count,
            "reads_per_model": sum(read_count.values()) / count,
            "reads_by_resource": read_count,
            "writes_by_kind": writes_by_kind(writes),
        }

    def bodies(self, namespace: str, names: list[str], replicas: int) -> list[dict[str, Any]]:
        """The models `create` makes, as stored in `namespace` (what the floor renders from)."""
        return [floor.model_body(name, replicas, namespace) for name in names]

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        n = self.args.models
        results: dict[str, Any] = {
            "nodes": {"nvidia": self.args.nvidia_nodes, "ascend": self.args.ascend_nodes},
            "models": n,
            "bulk_replicas": self.args.bulk_replicas,
            "probe_replicas": self.args.probe_replicas,
            "resync_seconds": self.args.resync_seconds,
        }
        binary = floor.build()  # before the cluster: a first build takes a minute of both cores
        self.up()
        bulk_key = f"bulk_{n}"
        if not self.args.floor_only:
            results.update(self.run_operator(n))
        else:
            results[bulk_key] = {}
        results["floor"] = self.run_floor(binary, n)
        bulk = results[bulk_key]
        fl = results["floor"]
        bulk["floor_create_seconds"] = fl["bulk"]["create_seconds"]
        bulk["floor_converged_seconds"] = fl["bulk"]["converged_seconds"]
        if "converged_seconds" in bulk:
            bulk["ratio_to_floor"] = bulk["converged_seconds"] / bulk["floor_converged_seconds"]
        results["probes"] = self.probe_log
        return results

    def run_operator(self, n: int) -> dict[str, Any]:
        self.start_operator()
        probes: dict[str, list[float]] = {}
        probes["0"] = self.probe_latencies("0", self.args.probes)
        log(f"apply->Deployment with 0 present: p50 {percentile(probes['0'], 50):.3f}s")

        self.create_many("bulk-100", 100, self.args.bulk_replicas)
        self.wait_converged("bulk-100", 100, 300)
        probes["100"] = self.probe_latencies("100", self.args.probes)
        log(f"apply->Deployment with 100 present: p50 {percentile(probes['100'], 50):.3f}s")
        self.delete_namespace("bulk-100")

        bulk = self.bulk(f"bulk-{n}", n, USER_AGENT)
        probes[str(n)] = self.probe_latencies(str(n), self.args.probes)
        log(f"apply->Deployment with {n} present: p50 {percentile(probes[str(n)], 50):.3f}s")

        writes, resync_seconds = self.noop_resync_writes()
        rss, cpu = self.operator_usage()
        assert self.operator is not None
        self.operator.stop()
        self.operator = None
        # The floor starts from the state the operator's bulk phase found: its models gone.
        self.delete_namespace(f"bulk-{n}")
        return {
            "apply_to_deployment_seconds": {k: summary(v) for k, v in probes.items()},
            f"bulk_{n}": bulk,
            "noop_resync": {"writes": writes, "seconds": resync_seconds, "what": self.resync_writes},
            "operator": {"peak_rss_mib": rss, "rss_at_end_mib": self.rss_now_mib, "cpu_seconds": cpu},
        }

    def run_floor(self, binary: Path, n: int) -> dict[str, Any]:
        """The same bulk and probes with the floor in the operator's place."""
        bulk_ns, probe_ns = f"floor-bulk-{n}", f"floor-probe-{n}"
        started = time.monotonic()
        pool = yaml.safe_load((ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml").read_text())
        rendered = floor.render_models(
            self.bodies(bulk_ns, [bulk_name(i) for i in range(n)], self.args.bulk_replicas)
            + self.bodies(
                probe_ns, [probe_name(i) for i in range(self.args.probes)], self.args.probe_replicas
            ),
            pool,
        )
        log(f"rendered {len(rendered)} models for the floor in {time.monotonic() - started:.1f}s")
        self.floor = floor.FloorProcess(
            binary,
            self.kubeconfig,
            rendered,
            [bulk_ns, probe_ns],
            self.state,
            workers=self.args.floor_workers,
        )
        self.floor.start()
        bulk = self.bulk(bulk_ns, n, floor.USER_AGENT)
        probes = self.probe_latencies(str(n), self.args.probes, prefix="floor-probe")
        log(f"floor: apply->Deployment with {n} present: p50 {percentile(probes, 50):.3f}s")
        self.wait_converged(probe_ns, self.args.probes, 60)  # its summary then counts every probe
        stopped = self.floor.stop()
        self.floor = None
        requests = stopped.get("requests", {})
        handled = stopped.get("handled", 0) or 1
        return {
            "workers": self.args.floor_workers,
            "bulk": bulk,
            "apply_to_deployment_seconds": {str(n): summary(probes)},
            "handled": stopped.get("handled"),
            "retries": stopped.get("retries"),
            "requests": requests,
            "requests_per_model": sum(v for k, v in requests.items() if k not in {"GET", "WATCH"}) / handled,
        }


def bulk_name(i: int) -> str:
    return f"m{i:04d}"


def probe_name(i: int) -> str:
    return f"p{i:03d}"


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.mean(values),
        "n": len(values),
    }


def reads(metrics: str) -> dict[str, int]:
    """Single-object GETs and cluster-wide LISTs of `READ_RESOURCES` the API server has served, by
    verb and resource, from its `apiserver_request_total` counters."""
    counts: dict[str, int] = {}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        text, value = line.rsplit(" ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', text))
        resource, verb, scope = labels.get("resource"), labels.get("verb"), labels.get("scope")
        if resource not in READ_RESOURCES or labels.get("subresource"):
            continue
        if (verb, scope) in {("GET", "resource"), ("LIST", "cluster")}:
            key = f"{verb} {resource}"
            counts[key] = counts.get(key, 0) + int(float(value))
    return dict(sorted(counts.items()))


def describe_write(entry: dict[str, Any]) -> str:
    """An audit entry as "verb resource/subresource namespace/name"."""
    ref = entry.get("objectRef", {})
    return (
        f"{entry['verb']} {ref.get('resource')}/{ref.get('subresource', '')} "
        f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    )


def writes_by_kind(writes: list[str]) -> dict[str, int]:
    """Audit lines ("verb resource/subresource namespace/name") counted by verb and resource."""
    counts: dict[str, int] = {}
    for line in writes:
        key = " ".join(line.split()[:2]).rstrip("/")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def table(results: dict[str, Any]) -> str:
    n = results["models"]
    bulk = results[f"bulk_{n}"]
    fl = results["floor"]
    rows = [("simulated accelerator nodes", f"{results['nodes']['nvidia'] + results['nodes']['ascend']}", "")]
    for k, v in results.get("apply_to_deployment_seconds", {}).items():
        rows.append(
            (
                f"apply -> Deployment, {k} present (p50 / p99)",
                f"{v['p50']:.3f} s / {v['p99']:.3f} s",
                "p99 ≤ 0.25 s" if k == "1000" else "",
            )
        )
    if "converged_seconds" in bulk:
        rows += [
            (f"{n:,} created at once: all converged", f"{bulk['converged_seconds']:.1f} s", ""),
            ("  of which creating them took", f"{bulk['create_seconds']:.1f} s", ""),
            ("  requests per model: writes / reads", per_model(bulk), ""),
        ]
    rows += [
        (f"floor: {n:,} created at once, all converged", f"{bulk['floor_converged_seconds']:.1f} s", ""),
        ("  of which creating them took", f"{bulk['floor_create_seconds']:.1f} s", ""),
        ("  requests per model: writes / reads", per_model(fl["bulk"]), ""),
    ]
    for k, v in fl["apply_to_deployment_seconds"].items():
        rows.append((f"floor: apply -> Deployment, {k} present", f"{v['p50']:.3f} s / {v['p99']:.3f} s", ""))
    if "ratio_to_floor" in bulk:
        rows.append(("all converged: operator / floor", f"{bulk['ratio_to_floor']:.2f}", "≤ 1.2"))
    if "operator" in results:
        rows += [
            ("operator peak RSS", f"{results['operator']['peak_rss_mib']:.0f} MiB", "≤ 120 MiB"),
            ("  RSS at the end", f"{results['operator']['rss_at_end_mib']:.0f} MiB", ""),
            ("operator CPU", f"{results['operator']['cpu_seconds']:.1f} s", ""),
            ("API writes in one no-op resync", f"{results['noop_resync']['writes']}", "0"),
            ("  one resync pass over every model took", f"{results['noop_resync']['seconds']:.1f} s", ""),
        ]
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'measure'.ljust(width)}{'result':>24}  target", "-" * (width + 36)]
    lines += [f"{a.ljust(width)}{b:>24}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def per_model(bulk: dict[str, Any]) -> str:
    return f"{bulk['writes_per_model']:.2f} / {bulk['reads_per_model']:.2f}"


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
    parser.add_argument(
        "--models", type=int, default=1000, help="models created at once (5000: the large-scale figures)"
    )
    parser.add_argument("--floor-workers", type=int, default=8, help="the floor's concurrent workers")
    parser.add_argument(
        "--floor-only", action="store_true", help="measure the floor alone (no operator, no ratio)"
    )
    parser.add_argument(
        "--output", help="JSON results (default results/bench-operator.json, or -<models>.json)"
    )
    args = parser.parse_args()
    if args.output is None:
        suffix = "" if args.models == 1000 and not args.floor_only else f"-{args.models}"
        suffix += "-floor" if args.floor_only else ""
        args.output = str(ROOT / "results" / f"bench-operator{suffix}.json")
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
