"""`make bench-faults`: the operator under faults, against the local control plane.

Each scenario is bounded in count and time, checks the same invariants afterwards, and reports
figures, not assertions:

- kills: the operator SIGKILLed at random moments while models are created and updated; after each
  restart, the time until every model converges; afterwards no orphaned, duplicated or stale
  workload, every condition's observedGeneration current, every Deployment what `gpupool render`
  makes of its model;
- api-down: kube-apiserver stopped for a while: whether the operator survives, its log lines and
  tracebacks per second during the outage, and the time to converge a change made once the API is
  back;
- rapid-edits: many edits of one spec in a row: the last one wins, and how many the operator applied;
- node-deleted / node-not-ready: a node carrying an instance deleted, or made NotReady: the time
  until the pool's count leaves it out, and until the model has all its instances again;
- leader-killed: the leader SIGKILLed with a standby running: takeover time, convergence of a change
  made meanwhile, and writes the new leader repeated (objects written more than once, events posted
  twice);
- etcd-restart: etcd stopped and started again under a running operator: whether it survives, and
  the time to converge a change made once etcd is back;
- contention: three models of one tier asking for far more than the pool holds: the time until the
  pool's allocation settles, then every write over five minutes left alone (none expected);
- bad-input: the table of bad manifests in tests/e2e/bad_manifests.py, run by its own test.

Each scenario starts on an empty pool (the namespaces of the one before are deleted). The whole run
takes about 16 minutes on two cores; `tests/e2e/test_faults.py` runs a bounded subset of the same
code. Run it under the shared end-to-end lock (`make bench-faults` does).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT / "tests" / "e2e"
sys.path.insert(0, str(E2E))
from cluster import CLUSTER_SH, Cluster, bring_up, tear_down  # noqa: E402
from kubernetes import client, config  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from leases import elected_operator, reconciles, wait_for_holder  # noqa: E402
from operator_process import OperatorProcess, audit_writes  # noqa: E402

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment  # noqa: E402
from gpupool.controller.kube import contains  # noqa: E402
from gpupool.manifests import parse_object  # noqa: E402
from gpupool.render import render_model_deployment  # noqa: E402
from gpupool.services.modeldeployment import desired_replicas, plan_model  # noqa: E402

POOL_FILE = ROOT / "manifests" / "samples" / "pool-nvidia-h100.yaml"
POOL = "nvidia-h100"
GROUP, VERSION = "gpupool.io", "v1alpha1"
MANAGED = "app.kubernetes.io/managed-by=gpupool"


def log(text: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Result:
    """One scenario's figures and the invariant violations found afterwards."""

    scenario: str
    runs: int
    figures: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "ok" if not self.problems else f"{len(self.problems)} problem(s)"


def seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.1f} s, max {max(values):.1f} s"


def table(results: list[Result]) -> str:
    rows = [("scenario", "runs", "figures", "invariants")]
    for r in results:
        figures = "; ".join(f"{k} {v}" for k, v in r.figures.items())
        rows.append((r.scenario, str(r.runs), figures, r.verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 10)
    return "\n".join(lines)


def model_body(name: str, seed: int, replicas: int) -> dict[str, Any]:
    """A small model whose rendered Deployment changes with `seed` (an engine argument). It rolls
    a new seed in place (RollingUpdate): a Canary would wait for the analysis of the Prometheus the
    sample pool names, which the local cluster does not run (canaries: tests/e2e/test_rollout.py)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "llama-3.1-8b"},
            "pool": POOL,
            "traffic": {"peakQps": 1},
            "replicas": replicas,
            "engine": {"extraArgs": [f"--seed={seed}"]},
            "rollout": {"strategy": "RollingUpdate"},
        },
    }


def expected_objects(md: dict[str, Any], pool: dict[str, Any]) -> list[dict[str, Any]]:
    """What `gpupool render` prints for the model on its pool."""
    model = parse_object(ModelDeployment, md)
    _, plan = plan_model(model, parse_object(InferencePool, pool))
    return render_model_deployment(
        model, parse_object(InferencePool, pool), plan, desired_replicas(model, plan)
    )


class Faults:
    def __init__(self, cluster: Cluster, work_dir: Path, seed: int = 7) -> None:
        self.cluster = cluster
        self.work_dir = work_dir
        self.rng = random.Random(seed)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespaces: list[str] = []
        self.operators: list[OperatorProcess] = []

    # -- setup ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.cluster.install_crds()
        self.cluster.kubectl("apply", "-f", str(POOL_FILE))

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.cluster.create_model_namespace(name)
        self.namespaces.append(name)
        return name

    def operator(
        self, name: str, *, identity: str | None = None, lease_namespace: str = ""
    ) -> OperatorProcess:
        log_dir = self.work_dir / name
        log_dir.mkdir(parents=True, exist_ok=True)
        if identity is None:
            process = OperatorProcess(str(self.cluster.kubeconfig), log_dir, resync_seconds=5)
        else:
            process = elected_operator(
                str(self.cluster.kubeconfig), log_dir, identity, lease_namespace, "gpupool-operator"
            )
        self.operators.append(process)
        return process

    def cleanup(self) -> None:
        """Stop the operators and delete the namespaces made so far (their pods free the pool)."""
        for process in self.operators:
            process.stop()
        for ns in self.namespaces:
            self.cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=180s", check=False)
        self.operators, self.namespaces = [], []

    # -- writes ---------------------------------------------------------------------------------

    def apply_model(self, namespace: str, name: str, seed: int, replicas: int = 0) -> None:
        """Create the model or move its seed, retrying while the API server is unreachable."""
        body = model_body(name, seed, replicas)
        patch = {"spec": {"replicas": replicas, "engine": {"extraArgs": [f"--seed={seed}"]}}}
        for _ in range(120):
            try:
                try:
                    self.custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, "modeldeployments", body
                    )
                except ApiException as err:
                    if err.status != 409:
                        raise
                    self.custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, "modeldeployments", name, patch
                    )
                return
            except ApiException as err:
                if err.status is not None and 400 <= err.status < 500 and err.status != 429:
                    raise
            except OSError:
                pass  # the API server is unreachable
            time.sleep(0.5)
        raise RuntimeError(f"could not write model {namespace}/{name}")

    # -- the invariants -------------------------------------------------------------------------

    def problems(self, namespace: str) -> list[str]:
        """Everything wrong with the namespace's models and workloads; [] when converged."""
        models = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")[
            "items"
        ]
        pool = self.custom.get_cluster_custom_object(GROUP, VERSION, "inferencepools", POOL)
        live = self.apps.list_namespaced_deployment(namespace, label_selector=MANAGED, _preload_content=False)
        # Items of a list carry no apiVersion and kind of their own.
        deployments = [
            {"apiVersion": "apps/v1", "kind": "Deployment", **d} for d in json.loads(live.data)["items"]
        ]
        found: list[str] = []
        uids = {m["metadata"]["uid"]: m for m in models}
        owned: Counter[str] = Counter()
        for d in deployments:
            owners = [
                o["uid"]
                for o in d["metadata"].get("ownerReferences", [])
                if o.get("kind") == "ModelDeployment"
            ]
            if not owners or owners[0] not in uids:
                found.append(f"orphaned Deployment {d['metadata']['name']}")
            else:
                owned[owners[0]] += 1
        by_name = {d["metadata"]["name"]: d for d in deployments}
        for md in models:
            name, generation = md["metadata"]["name"], md["metadata"]["generation"]
            status = md.get("status") or {}
            if status.get("observedGeneration") != generation:
                found.append(
                    f"{name}: status.observedGeneration {status.get('observedGeneration')} != {generation}"
                )
            stale = [
                c["type"] for c in status.get("conditions") or [] if c.get("observedGeneration") != generation
            ]
            if stale or not status.get("conditions"):
                found.append(f"{name}: conditions not at generation {generation}: {stale or 'none'}")
            if owned[md["metadata"]["uid"]] > 1:
                found.append(f"{name}: {owned[md['metadata']['uid']]} Deployments")
            for expected in expected_objects(md, pool):
                if expected["kind"] != "Deployment":
                    continue
                actual = by_name.get(expected["metadata"]["name"])
                expected["metadata"].pop("ownerReferences", None)
                if actual is None:
                    found.append(f"{name}: no Deployment {expected['metadata']['name']}")
                elif not contains(actual, expected):
                    found.append(f"{name}: Deployment differs from `gpupool render`")
        return found

    def wait_converged(self, namespace: str, timeout: float) -> tuple[float | None, list[str]]:
        start = time.monotonic()
        last: list[str] = []
        while time.monotonic() - start < timeout:
            try:
                last = self.problems(namespace)
            except Exception as err:  # the API server may be coming back
                last = [f"cannot read: {type(err).__name__}"]
            if not last:
                return time.monotonic() - start, []
            time.sleep(0.5)
        return None, last

    # -- scenarios ------------------------------------------------------------------------------

    def kills(self, kills: int, models: int) -> Result:
        """SIGKILL the operator at a random moment of each round of creates and updates."""
        result = Result("kills", kills)
        ns = self.namespace("kills")
        operator = self.operator("kills")
        seeds: dict[str, int] = {}
        names = [f"m{i:02d}" for i in range(models)]
        per_round = -(-models // max(1, kills // 2))  # created over the first half of the rounds
        converge: list[float] = []
        operator.start()
        for round_ in range(kills):
            todo = [n for n in names if n not in seeds][:per_round]
            existing = [n for n in names if n in seeds]
            todo += self.rng.sample(existing, k=min(len(existing), max(2, models // 8)))

            def edit(batch: list[str] = todo) -> None:
                for name in batch:
                    seeds[name] = seeds.get(name, 0) + 1
                    self.apply_model(ns, name, seeds[name])

            writer = threading.Thread(target=edit)
            writer.start()
            time.sleep(self.rng.uniform(0.2, 3.0))
            assert operator.process is not None
            operator.process.kill()
            operator.process.wait()
            writer.join()
            restarted = time.monotonic()
            operator.start()
            took, left = self.wait_converged(ns, timeout=120)
            if took is None:
                result.problems += [f"round {round_}: not converged in 120 s: {left[:3]}"]
                log(f"kill {round_ + 1}/{kills}: not converged 120 s after the restart")
                continue
            converge.append(time.monotonic() - restarted)
            log(f"kill {round_ + 1}/{kills}: converged {converge[-1]:.1f} s after the restart")
        result.problems += self.problems(ns)
        operator.stop()
        result.figures = {
            "models": str(len(seeds)),
            "restart→converged": seconds(converge),
        }
        return result

    def component_outage(self, name: str, which: str, down: float, models: int) -> Result:
        """Stop one control-plane component (`kube-apiserver`, `etcd`) for `down` seconds under a
        running operator with `models` converged, start it again, and change a model once the API
        answers: whether the operator survives, what it logged meanwhile, and how long until the
        change converges."""
        result = Result(name, 1)
        ns = self.namespace(name.replace("-", ""))
        operator = self.operator(name.replace("-", ""))
        operator.start()
        for i in range(models):
            self.apply_model(ns, f"m{i:02d}", 1)
        took, left = self.wait_converged(ns, timeout=120)
        if took is None:
            result.problems.append(f"not converged before the outage: {left[:3]}")
        offset = operator.log_path.stat().st_size
        component("stop", which)
        stopped = time.monotonic()
        time.sleep(down)
        text = operator.log_path.read_bytes()[offset:].decode(errors="replace")
        during = time.monotonic() - stopped
        component("start", which)
        back = time.monotonic()
        # kube-apiserver reconnects to etcd by itself; wait until it answers before the change.
        wait(lambda: self.pool_nodes() >= 0, timeout=120)
        alive = operator.process is not None and operator.process.poll() is None
        self.apply_model(ns, "m00", 2)  # a change made once the API is back
        took, left = self.wait_converged(ns, timeout=180)
        if not alive:
            result.problems.append(
                f"operator exited during the outage ({operator.process and operator.process.returncode})"
            )
        if took is None:
            result.problems.append(f"not converged 180 s after {which} came back: {left[:3]}")
        lines = text.count("\n")
        result.figures = {
            f"{which} down": f"{during:.0f} s",
            "survived": "yes" if alive else "no",
            "log lines/s": f"{lines / during:.1f}",
            "tracebacks": str(text.count("Traceback")),
            f"{which} back→converged": f"{time.monotonic() - back:.1f} s" if took is not None else "> 180 s",
        }
        result.problems += self.problems(ns)
        operator.stop()
        return result

    def rapid_edits(self, edits: int) -> Result:
        """Edit one model's spec `edits` times in a row: the last edit is what runs."""
        result = Result("rapid-edits", edits)
        ns = self.namespace("edits")
        operator = self.operator("edits")
        operator.start()
        self.apply_model(ns, "hot", 0)
        self.wait_converged(ns, timeout=60)
        offset = self.cluster.audit_offset()
        start = time.monotonic()
        for seed in range(1, edits + 1):
            self.apply_model(ns, "hot", seed)
        written = time.monotonic()
        took, left = self.wait_converged(ns, timeout=60)
        deployment = self.apps.read_namespaced_deployment("hot", ns)
        args = deployment.spec.template.spec.containers[0].args or []
        seeds = [a for a in args if a.startswith("--seed=")]
        if seeds != [f"--seed={edits}"]:
            result.problems.append(f"the Deployment runs {seeds}, not the last edit --seed={edits}")
        if took is None:
            result.problems.append(f"not converged 60 s after the last edit: {left[:3]}")
        applies = [
            w
            for w in audit_writes(self.cluster.audit_log, offset)
            if (w.get("objectRef") or {}).get("resource") == "deployments"
            and (w.get("objectRef") or {}).get("namespace") == ns
        ]
        result.figures = {
            "edits in": f"{written - start:.1f} s",
            "last edit→converged": f"{took:.1f} s" if took is not None else "> 60 s",
            "Deployment writes": str(len(applies)),
        }
        result.problems += self.problems(ns)
        operator.stop()
        return result

    def node_faults(self) -> list[Result]:
        """A node carrying an instance deleted, then another made NotReady."""
        ns = self.namespace("nodes")
        operator = self.operator("nodes")
        operator.start()
        self.apply_model(ns, "spread", 1, replicas=2)
        results = []
        for fault in ("node-deleted", "node-not-ready"):
            result = Result(fault, 1)
            results.append(result)
            pods = self.wait_pods(ns, "spread", 2, timeout=120)
            if pods is None:
                result.problems.append("the model's 2 instances never ran")
                continue
            node = sorted(p["spec"]["nodeName"] for p in pods)[0]
            before = self.pool_nodes()
            start = time.monotonic()
            with self.deleted_node(node) if fault == "node-deleted" else self.not_ready_node(node):
                counted = wait(lambda n=before - 1: self.pool_nodes() == n, timeout=90)
                # Capacity lost to a node reduces what can be added, never what the model asks for.
                asked = self.apps.read_namespaced_deployment("spread", ns).spec.replicas
                if asked != 2:
                    result.problems.append(
                        f"the Deployment asks for {asked} instances, not 2, with {node} gone"
                    )
                if fault == "node-deleted":
                    back = self.wait_pods(ns, "spread", 2, timeout=150, avoid=node)
                    recovered = f"{time.monotonic() - start:.1f} s" if back is not None else "> 150 s"
                else:
                    # Pods tolerate not-ready:NoExecute for 300 s (DefaultTolerationSeconds), so
                    # Kubernetes leaves them there longer than this scenario lasts.
                    recovered = "n/a (300 s toleration)"
            result.figures = {
                "pool recount": f"{counted:.1f} s" if counted is not None else "> 90 s",
                "instances elsewhere": recovered,
            }
            if counted is None:
                result.problems.append(f"the pool still counts {node} 90 s later")
            readd = wait(lambda n=before: self.pool_nodes() == n, timeout=120)
            result.figures["node back→recounted"] = f"{readd:.1f} s" if readd is not None else "> 120 s"
            took, left = self.wait_converged(ns, timeout=120)
            if took is None:
                result.problems.append(f"not converged: {left[:3]}")
        operator.stop()
        return results

    def leader_killed(self, models: int) -> Result:
        """SIGKILL the leader with a standby running."""
        result = Result("leader-killed", 1)
        ns = self.namespace("leader")
        leader = self.operator("leader-a", identity="a", lease_namespace=ns)
        standby = self.operator("leader-b", identity="b", lease_namespace=ns)
        leader.start()
        wait_for_holder(self.cluster, ns, "gpupool-operator", "a")
        standby.start()
        for i in range(models):
            self.apply_model(ns, f"m{i:02d}", 1)
        self.wait_converged(ns, timeout=120)
        time.sleep(6)  # a resync or so: the standby must stay quiet through it
        standby_passes = reconciles(standby)
        events_before = self.event_reasons(ns)
        offset = self.cluster.audit_offset()
        assert leader.process is not None
        leader.process.kill()
        killed = time.monotonic()
        self.apply_model(ns, "m00", 2)
        wait_for_holder(self.cluster, ns, "gpupool-operator", "b", timeout=90)
        takeover = time.monotonic() - killed
        took, left = self.wait_converged(ns, timeout=120)
        converged_after = time.monotonic() - killed
        time.sleep(10)  # two resyncs of the new leader
        writes = [
            w
            for w in audit_writes(self.cluster.audit_log, offset)
            if (w.get("objectRef") or {}).get("resource") not in ("leases", "events")
            and (w.get("objectRef") or {}).get("namespace") in (ns, None)
        ]
        per_object = Counter(
            (w["objectRef"].get("resource"), w["objectRef"].get("name"), w["objectRef"].get("subresource"))
            for w in writes
        )
        events_after = self.event_reasons(ns)
        repeated = sum(
            n - events_before.get(k, 0)
            for k, n in events_after.items()
            if k in events_before and n > events_before[k]
        )
        if standby_passes:
            result.problems.append(f"the standby reconciled {standby_passes} times while the leader led")
        if took is None:
            result.problems.append(f"not converged after the takeover: {left[:3]}")
        result.figures = {
            "takeover": f"{takeover:.1f} s",
            "kill→converged": f"{converged_after:.1f} s",
            "writes after kill": str(len(writes)),
            "objects written twice": str(sum(1 for n in per_object.values() if n > 1)),
            "which": ", ".join("/".join(p for p in key if p) for key, n in per_object.items() if n > 1)
            or "-",
            "events repeated": str(repeated),
        }
        result.problems += self.problems(ns)
        return result

    def contention(self, soak: float) -> Result:
        """Three llama-3.1-70b models of one tier ask for 12 instances each (TP 4, 144 GPUs) of the
        32-GPU pool: time until the pool's allocation settles, then Deployment writes, model status
        writes and events over `soak` seconds left alone (all three should be zero)."""
        result = Result("contention", 1)
        ns = self.namespace("contend")
        operator = self.operator("contend")
        operator.start()
        names = [f"llama-{i}" for i in range(3)]
        start = time.monotonic()
        for name in names:
            body = model_body(name, 0, 12)
            body["spec"].update({"model": {"name": "llama-3.1-70b"}, "tier": "P1"})
            body["spec"].pop("engine")
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", body)
        capacity = 32 // 4

        def shared() -> bool:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments")["items"]
            statuses = [i.get("status") or {} for i in items]
            counts = [s.get("replicas") for s in statuses]
            return (
                len(items) == len(names)
                and sum(c or 0 for c in counts) == capacity
                and counts == [s.get("readyReplicas") for s in statuses]
            )

        # Settled: the pool is shared out, and no Deployment or event is written for 10 s.
        settled: float | None = None
        while time.monotonic() - start < 180:
            if wait(shared, timeout=180 - (time.monotonic() - start)) is None:
                break
            offset = self.cluster.audit_offset()
            time.sleep(10)
            if not self.writes(offset, ns, ("deployments", "events")) and shared():
                settled = time.monotonic() - start - 10
                break
        if settled is None:
            result.problems.append(f"not settled within 180 s: {capacity} instances never shared out quietly")
            operator.stop()
            return result
        counts = self.replicas(ns, names)
        offset = self.cluster.audit_offset()
        time.sleep(soak)
        writes = Counter(w["objectRef"].get("resource") for w in self.writes(offset, ns))
        after = self.replicas(ns, names)
        result.figures = {
            "settled": f"{settled:.1f} s",
            "instances": "/".join(str(c) for c in counts),
            "quiet for": f"{soak:.0f} s",
            "Deployment writes": str(writes["deployments"]),
            "status writes": str(writes["modeldeployments"]),
            "events": str(writes["events"]),
        }
        for resource, n in writes.items():
            result.problems.append(f"{n} {resource} write(s) while nothing changed")
        if after != counts:
            result.problems.append(f"instance counts moved from {counts} to {after}")
        operator.stop()
        return result

    def bad_input(self) -> Result:
        """The end-to-end table of bad manifests (tests/e2e/bad_manifests.py), run by its own test:
        each refused by the API server with a message naming the field or answered once by a
        condition; no traceback, no restart, a good model among them served."""
        from bad_manifests import ANSWERED, CASES, REFUSED

        result = Result("bad-input", len(CASES))
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(E2E / "test_bad_input.py")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        summary = (run.stdout.strip().splitlines() or ["no output"])[-1]
        result.figures = {
            "manifests": str(len(CASES)),
            "refused by the API server": str(len(REFUSED)),
            "answered by a condition": str(len(ANSWERED)),
            "tests": summary.strip("= "),
            "in": f"{time.monotonic() - started:.0f} s",
        }
        if run.returncode != 0:
            result.problems.append(f"tests/e2e/test_bad_input.py failed: {summary}")
            result.problems += [line for line in run.stdout.splitlines() if line.startswith("E ")][:10]
        return result

    # -- helpers --------------------------------------------------------------------------------

    def writes(
        self,
        offset: int,
        namespace: str,
        resources: tuple[str, ...] = ("deployments", "events", "modeldeployments"),
    ) -> list[dict[str, Any]]:
        """Writes to `resources` of `namespace` since the audit log's `offset`."""
        return [
            w
            for w in audit_writes(self.cluster.audit_log, offset)
            if (w.get("objectRef") or {}).get("namespace") == namespace
            and (w.get("objectRef") or {}).get("resource") in resources
        ]

    def replicas(self, namespace: str, names: list[str]) -> list[int]:
        items = {
            i["metadata"]["name"]: i
            for i in self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")[
                "items"
            ]
        }
        return [int(((items.get(n) or {}).get("status") or {}).get("replicas") or 0) for n in names]

    def pool_nodes(self) -> int:
        pool = self.custom.get_cluster_custom_object(GROUP, VERSION, "inferencepools", POOL)
        return int((pool.get("status") or {}).get("nodes") or 0)

    def wait_pods(
        self, namespace: str, model: str, count: int, timeout: float, avoid: str | None = None
    ) -> list[dict[str, Any]] | None:
        def ready() -> list[dict[str, Any]] | None:
            pods = json.loads(
                self.core.list_namespaced_pod(
                    namespace, label_selector=f"gpupool.io/model-deployment={model}", _preload_content=False
                ).data
            )["items"]
            good = [
                p
                for p in pods
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
                and p["spec"].get("nodeName") != avoid
                and any(
                    c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])
                )
            ]
            return good if len(good) == count else None

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            found = ready()
            if found:
                return found
            time.sleep(0.5)
        return None

    @contextmanager
    def deleted_node(self, node: str) -> Iterator[None]:
        saved = self.cluster.get_json("node", node)
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            saved["metadata"].pop(key, None)
        saved["status"] = {key: saved["status"][key] for key in ("capacity", "allocatable")}
        self.cluster.kubectl("delete", "node", node, "--wait=true")
        try:
            yield
        finally:
            self.cluster.apply(saved)

    @contextmanager
    def not_ready_node(self, node: str) -> Iterator[None]:
        """kwok lets go of the node (its annotation removed) and its Ready condition turns False."""
        self.cluster.kubectl("annotate", "node", node, "kwok.x-k8s.io/node-")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "KubeletNotReady",
                        "message": "fault suite",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ]
            }
        }
        self.core.patch_node_status(node, patch)
        # The eviction the node controller would start after its grace period, at once.
        self.cluster.kubectl("taint", "node", node, "node.kubernetes.io/not-ready:NoExecute", "--overwrite")
        try:
            yield
        finally:
            self.cluster.kubectl(
                "taint", "node", node, "node.kubernetes.io/not-ready:NoExecute-", check=False
            )
            self.cluster.kubectl("annotate", "node", node, "kwok.x-k8s.io/node=fake", "--overwrite")

    def event_reasons(self, namespace: str) -> Counter[tuple[str, str]]:
        events = json.loads(self.core.list_namespaced_event(namespace, _preload_content=False).data)["items"]
        return Counter(
            (e["involvedObject"]["name"], e["reason"])
            for e in events
            if e.get("reportingComponent") == "gpupool"
        )


def wait(probe: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `probe()` is true, None after `timeout`; errors count as false."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if probe():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(0.5)
    return None


def component(verb: str, name: str) -> None:
    subprocess.run([str(CLUSTER_SH), verb, name], cwd=ROOT, check=True, capture_output=True, timeout=300)


SCENARIOS = [
    "kills",
    "rapid-edits",
    "nodes",
    "leader-killed",
    "api-down",
    "etcd-restart",
    "contention",
    "bad-input",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--outage", type=float, default=90.0, help="seconds kube-apiserver stays down")
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help=f"scenarios: {' '.join(SCENARIOS)}",
    )
    parser.add_argument("--soak", type=float, default=300.0, help="seconds the contended pool is left alone")
    parser.add_argument("--etcd-down", type=float, default=20.0, help="seconds etcd stays down")
    parser.add_argument("--work-dir", default=str(ROOT / "results" / "faults"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    chosen = set(args.only or SCENARIOS)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cluster = bring_up()
    faults = Faults(cluster, work, seed=args.seed)
    results: list[Result] = []
    began = time.monotonic()
    try:
        faults.prepare()
        scenarios: list[tuple[str, Callable[[], Result | list[Result]]]] = [
            ("kills", lambda: faults.kills(args.kills, args.models)),
            ("rapid-edits", lambda: faults.rapid_edits(args.edits)),
            ("nodes", faults.node_faults),
            ("leader-killed", lambda: faults.leader_killed(min(args.models, 10))),
            (
                "api-down",
                lambda: faults.component_outage(
                    "api-down", "kube-apiserver", args.outage, min(args.models, 10)
                ),
            ),
            (
                "etcd-restart",
                lambda: faults.component_outage("etcd-restart", "etcd", args.etcd_down, min(args.models, 10)),
            ),
            ("contention", lambda: faults.contention(args.soak)),
            ("bad-input", faults.bad_input),
        ]
        for name, run in scenarios:
            if name not in chosen:
                continue
            log(f"scenario {name}")
            started = time.monotonic()
            try:
                outcome = run()
            except Exception as err:  # one broken scenario must not hide the others' figures
                outcome = Result(name, 0, problems=[f"scenario failed: {type(err).__name__}: {err}"])
            for r in outcome if isinstance(outcome, list) else [outcome]:
                r.figures["took"] = f"{time.monotonic() - started:.0f} s"
                results.append(r)
                log(f"{r.scenario}: {r.figures}; {r.verdict}")
            faults.cleanup()  # each scenario starts on an empty pool
    finally:
        faults.cleanup()
        if cluster.started_here:
            tear_down()
    print()
    print(table(results))
    print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    for r in results:
        for problem in r.problems[:10]:
            print(f"  {r.scenario}: {problem}")
    (work / "faults.json").write_text(
        json.dumps(
            [{"scenario": r.scenario, "runs": r.runs, **r.figures, "problems": r.problems} for r in results],
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
