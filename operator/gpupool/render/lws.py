"""A LeaderWorkerSet for an instance that spans several nodes.

One group of LeaderWorkerSet (leaderworkerset.x-k8s.io/v1, sigs.k8s.io/lws) is one instance:
`size` pods, one per node, each holding the node's tensor-parallel group of accelerators. The
leader (worker index 0) starts the Ray head, waits until every pod of the group has joined, then
runs `vllm serve` with the plan's tensor- and pipeline-parallel sizes over Ray; the workers join
the leader's Ray cluster and block. This is the layout of vLLM's own LeaderWorkerSet guide
(docs/deployment/frameworks/lws.md) and of vllm-ascend's multi-node guides, with the wait
written out so that the same command works in the vLLM and vllm-ascend images.

The LeaderWorkerSet controller injects LWS_LEADER_ADDRESS (the leader's DNS name under its
group's headless Service, `<set>-<group>`, so that no Service of the set's own takes the model's
Service's name) and LWS_GROUP_SIZE into every pod. `spec.replicas` counts groups.
RecreateGroupOnPodRestart restarts the whole group when one pod fails, since a pipeline missing a
stage serves nothing; LeaderCreated starts the workers once the leader pod exists (the leader
cannot become ready before they join). Only the leader serves HTTP, so only it has probes and
only it is behind the model's Service.

A data-parallel x expert-parallel plan (gpupool.sizing.expert_groups) needs no Ray: every pod
runs `vllm serve` with the same engine arguments, `--data-parallel-size-local` ranks each. The
leader runs the API server and the first ranks; each worker runs `--headless` from
`--data-parallel-start-rank` LWS_WORKER_INDEX x ranks-per-node (LeaderWorkerSet injects
LWS_WORKER_INDEX since v0.6.0), and all meet at `--data-parallel-address` $LWS_LEADER_ADDRESS
on the rpc port (vLLM's docs/serving/data_parallel_deployment.md, "Node 0 ... Node 1 ...
--headless ... --data-parallel-start-rank").

This module turns the pod template the Deployment renderer built into the set's two templates;
it imports nothing of that renderer, which calls it.
"""

from __future__ import annotations

import copy
import shlex
from typing import Any, Final

from gpupool.render.vllm import DATA_PARALLEL_RPC_PORT

Obj = dict[str, Any]

API_VERSION: Final = "leaderworkerset.x-k8s.io/v1"
KIND: Final = "LeaderWorkerSet"
# The label LeaderWorkerSet sets on each pod: 0 on the leader, 1..size-1 on the workers.
WORKER_INDEX_LABEL: Final = "leaderworkerset.sigs.k8s.io/worker-index"
# One group per topology domain (an annotation of the set), e.g. one per rack or leaf switch.
EXCLUSIVE_TOPOLOGY_ANNOTATION: Final = "leaderworkerset.sigs.k8s.io/exclusive-topology"
# Ray's default GCS port, the one vLLM's multi-node script starts the head on.
RAY_PORT: Final = 6379
# How often the leader checks whether the whole group has joined its Ray cluster.
JOIN_POLL_SECONDS: Final = 5

# Counts the live nodes of the local Ray cluster (vLLM's multi-node-serving.sh waits the same way).
_RAY_NODES = (
    'python3 -c \'import ray; ray.init(address="auto"); print(sum(n["Alive"] for n in ray.nodes()))\''
)


def leader_command(serve: list[str]) -> list[str]:
    """The leader's shell: start the Ray head, wait for the whole group, then exec the engine."""
    script = (
        f"ray start --head --port={RAY_PORT} --disable-usage-stats && "
        f'until [ "$({_RAY_NODES} 2>/dev/null)" -ge "$LWS_GROUP_SIZE" ]; '
        f'do echo "waiting for $LWS_GROUP_SIZE Ray nodes"; sleep {JOIN_POLL_SECONDS}; done && '
        f"exec {shlex.join(serve)}"
    )
    return ["/bin/sh", "-c", script]


def worker_command() -> list[str]:
    """A worker's shell: join the leader's Ray cluster and stay in the foreground."""
    script = f'exec ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" --block --disable-usage-stats'
    return ["/bin/sh", "-c", script]


def _data_parallel_script(serve: list[str], extra: str) -> list[str]:
    """`serve` (vllm serve MODEL options...) with the pod-dependent `extra` flags right after the
    model, so that the user's extraArgs still come last."""
    model_at = serve.index("serve") + 2
    head, tail = serve[:model_at], serve[model_at:]
    script = f"exec {shlex.join(head)} {extra} {shlex.join(tail)}".rstrip()
    return ["/bin/sh", "-c", script]


def data_parallel_leader_command(serve: list[str]) -> list[str]:
    """The leader's shell of a data-parallel group: the API server and ranks 0..local-1."""
    return _data_parallel_script(serve, '--data-parallel-address "$LWS_LEADER_ADDRESS"')


def data_parallel_worker_command(serve: list[str], ranks_per_node: int) -> list[str]:
    """A worker's shell of a data-parallel group: its node's ranks, headless, from its first rank."""
    extra = (
        f'--headless --data-parallel-start-rank "$((LWS_WORKER_INDEX * {ranks_per_node}))" '
        '--data-parallel-address "$LWS_LEADER_ADDRESS"'
    )
    return _data_parallel_script(serve, extra)


def _with_rdma(resources: Obj, rdma_resource: str | None) -> Obj:
    if rdma_resource is None:
        return resources
    return {part: {**amounts, rdma_resource: "1"} for part, amounts in resources.items()}


def _templates(template: Obj, rdma_resource: str | None, data_parallel_local: int | None) -> tuple[Obj, Obj]:
    leader = copy.deepcopy(template)
    (engine,) = leader["spec"]["containers"]
    serve = [*engine["command"], *engine.pop("args")]
    if data_parallel_local is None:
        engine["command"] = leader_command(serve)
        port = {"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"}
    else:
        engine["command"] = data_parallel_leader_command(serve)
        port = {"name": "dp-rpc", "containerPort": DATA_PARALLEL_RPC_PORT, "protocol": "TCP"}
    engine["resources"] = _with_rdma(engine["resources"], rdma_resource)
    engine["ports"] = [*engine["ports"], port]

    worker = copy.deepcopy(template)
    (joiner,) = worker["spec"]["containers"]
    joiner["command"] = (
        worker_command()
        if data_parallel_local is None
        else data_parallel_worker_command(serve, data_parallel_local)
    )
    joiner.pop("args", None)
    joiner["resources"] = _with_rdma(joiner["resources"], rdma_resource)
    # Workers serve no HTTP: they have no probes and no port but Ray's. The leader's probes
    # and the group restart policy cover them (a worker that dies recreates the group).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        joiner.pop(probe, None)
    joiner["ports"] = (
        [{"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"}] if data_parallel_local is None else []
    )
    return leader, worker


def leader_worker_set(
    deployment: Obj,
    *,
    group_size: int,
    rdma_resource: str | None = None,
    exclusive_topology: str | None = None,
    data_parallel_local: int | None = None,
) -> Obj:
    """The LeaderWorkerSet serving what `deployment` (the renderer's Deployment) would, as
    groups of `group_size` pods: same name, metadata, owner and replica count. With
    `data_parallel_local`, each pod runs that many data-parallel ranks of the engine (no Ray)."""
    if group_size < 2:
        raise ValueError(f"a LeaderWorkerSet group needs at least 2 pods, got {group_size}")
    leader, worker = _templates(deployment["spec"]["template"], rdma_resource, data_parallel_local)
    metadata = copy.deepcopy(deployment["metadata"])
    if exclusive_topology is not None:
        metadata.setdefault("annotations", {})[EXCLUSIVE_TOPOLOGY_ANNOTATION] = exclusive_topology
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "replicas": deployment["spec"]["replicas"],
            "startupPolicy": "LeaderCreated",
            # A headless Service per group, named after its leader pod (`<set>-<group>`). The
            # Shared policy's one Service takes the set's own name, which is the model's Service:
            # whichever comes first wins, so either the model's Service is refused (two
            # controllers) or the set finds a ClusterIP Service where its headless one should be
            # and LWS_LEADER_ADDRESS resolves to nothing (sigs.k8s.io/lws v0.9.0,
            # pkg/controllers/leaderworkerset_controller.go reconcileHeadlessServices,
            # pkg/controllers/pod_controller.go, pkg/utils/controller/controller_utils.go).
            "networkConfig": {"subdomainPolicy": "UniquePerReplica"},
            # One group at a time: a surge group would need nodes the pool may not have.
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "leaderWorkerTemplate": {
                "size": group_size,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": leader,
                "workerTemplate": worker,
            },
        },
    }


def leader_service(service: Obj) -> Obj:
    """The model's Service, narrowed to the groups' leaders (the only pods serving HTTP)."""
    narrowed = copy.deepcopy(service)
    narrowed["spec"]["selector"] = {**narrowed["spec"]["selector"], WORKER_INDEX_LABEL: "0"}
    return narrowed
