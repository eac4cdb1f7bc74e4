"""A model no node holds: a LeaderWorkerSet of one pod per node, the leader serving."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

import pytest
from render_fixtures import NAMESPACE, check_golden, load_pool, uid_for

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.render import UnsupportedEngineError, render_model_deployment
from gpupool.render.lws import EXCLUSIVE_TOPOLOGY_ANNOTATION, WORKER_INDEX_LABEL
from gpupool.services.modeldeployment import plan_model


def _model(**spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"name": "llama-3.1-405b"},
        "pool": "h100",
        "traffic": {"peakQps": 2},
        **spec,
    }
    name = "llama-405b"
    return ModelDeployment.model_validate(
        {"metadata": {"name": name, "namespace": NAMESPACE, "uid": uid_for(name)}, "spec": body}
    )


def _pool(**inter_node: Any) -> InferencePool:
    pool = load_pool("pool-nvidia-h100.yaml")
    network = pool.spec.inter_node.model_copy(update=inter_node)
    return pool.model_copy(update={"spec": pool.spec.model_copy(update={"inter_node": network})})


def _render(md: ModelDeployment, pool: InferencePool, replicas: int = 1) -> list[dict[str, Any]]:
    _, plan = plan_model(md, pool)
    return render_model_deployment(md, pool, plan, replicas)


def test_405b_bf16_on_h100_matches_golden() -> None:
    objects = _render(_model(), _pool(rdma_resource="rdma/rdma_shared_device_a"), replicas=2)
    check_golden(objects, "llama-3.1-405b-vllm-nvidia-multinode")


def test_one_group_per_instance_of_one_pod_per_node() -> None:
    pool = _pool()
    (group, service) = _render(_model(), pool, replicas=3)
    assert (group["apiVersion"], group["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    spec = group["spec"]
    assert spec["replicas"] == 3
    template = spec["leaderWorkerTemplate"]
    assert template["size"] == 2
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert group["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    leader = template["leaderTemplate"]["spec"]
    worker = template["workerTemplate"]["spec"]
    for pod in (leader, worker):
        (container,) = pod["containers"]
        # Each pod holds a whole node's tensor-parallel group.
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "8"
        assert pod["priorityClassName"] == f"gpupool-{pool.metadata['name']}-p1"
        assert pod["nodeSelector"] == pool.spec.node_selector
        assert pod["tolerations"] == [t.to_wire() for t in pool.spec.tolerations]
    (engine,) = leader["containers"]
    script = engine["command"][-1]
    assert script.startswith("ray start --head --port=6379")
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2 --distributed-executor-backend ray" in script
    assert "startupProbe" in engine and "readinessProbe" in engine
    assert engine["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    (joiner,) = worker["containers"]
    assert '--address="$LWS_LEADER_ADDRESS:6379" --block' in joiner["command"][-1]
    assert "readinessProbe" not in joiner
    # Only the leaders serve HTTP.
    assert service["spec"]["selector"][WORKER_INDEX_LABEL] == "0"
    # Each group's headless Service is `<set>-<group>`: none of the set's takes the model
    # Service's name, which is the set's own.
    assert spec["networkConfig"] == {"subdomainPolicy": "UniquePerReplica"}
    assert service["metadata"]["name"] == group["metadata"]["name"]


def test_rdma_and_exclusive_topology_come_from_the_pool() -> None:
    pool = _pool(rdma_resource="rdma/hca", exclusive_topology_key="topology.kubernetes.io/rack")
    (group, _) = _render(_model(), pool)
    assert group["metadata"]["annotations"][EXCLUSIVE_TOPOLOGY_ANNOTATION] == "topology.kubernetes.io/rack"
    template = group["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        (container,) = template[role]["spec"]["containers"]
        assert container["resources"]["limits"]["rdma/hca"] == "1"


def test_triton_does_not_run_across_nodes() -> None:
    md = _model(engine={"type": "triton"})
    with pytest.raises(UnsupportedEngineError, match="vLLM only"):
        _render(md, _pool())


def test_single_node_plans_keep_their_deployment() -> None:
    objects = _render(_model(model={"name": "llama-3.1-70b"}), _pool())
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]


def test_the_leaders_engine_flags_parse_to_the_plan() -> None:
    md, pool = _model(), _pool()
    _, plan = plan_model(md, pool)
    (group, _) = render_model_deployment(md, pool, plan, 1)
    (engine,) = group["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"]
    words = shlex.split(engine["command"][-1])
    serve = words[words.index("exec") + 1 :]
    assert serve[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-405B-Instruct"]
    parser = argparse.ArgumentParser()
    for flag in ("tensor-parallel-size", "pipeline-parallel-size", "max-model-len", "max-num-seqs"):
        parser.add_argument(f"--{flag}", type=int)
    parser.add_argument("--distributed-executor-backend")
    known, _ = parser.parse_known_args(serve[3:])
    assert (known.tensor_parallel_size, known.pipeline_parallel_size) == (
        plan.tensor_parallel,
        plan.pipeline_parallel,
    )
    assert known.max_model_len == plan.max_model_len
    assert known.max_num_seqs == plan.max_num_seqs
    assert known.distributed_executor_backend == "ray"


def _deepseek(pool_file: str = "pool-nvidia-h100.yaml") -> tuple[ModelDeployment, InferencePool]:
    pool = load_pool(pool_file)
    md = _model(model={"name": "deepseek-v3"}, pool=pool.metadata["name"], maxModelLen=8192)
    return md, pool


def _serve_words(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The words after `exec` of a pod's shell, its variables and arithmetic expanded as sh would."""
    script = container["command"][-1]
    tail = script[script.index("exec ") + len("exec ") :]
    for name, value in env.items():
        tail = tail.replace(f'"$LWS_{name}"', value)
    words = shlex.split(tail)
    return [
        str(eval(w[3:-2], {}, {"LWS_WORKER_INDEX": int(env["WORKER_INDEX"])})) if w.startswith("$((") else w
        for w in words
    ]


def test_deepseek_v3_on_two_h100_nodes_matches_golden() -> None:
    md, pool = _deepseek()
    check_golden(_render(md, pool, replicas=1), "deepseek-v3-vllm-nvidia-multinode")


def test_deepseek_v3_on_two_atlas_800_a2_nodes_matches_golden() -> None:
    md, pool = _deepseek("pool-ascend-910b.yaml")
    check_golden(_render(md, pool, replicas=1), "deepseek-v3-vllm-ascend-multinode")


@pytest.mark.parametrize("pool_file", ["pool-nvidia-h100.yaml", "pool-ascend-910b.yaml"])
def test_data_parallel_ranks_split_over_the_group_without_ray(pool_file: str) -> None:
    md, pool = _deepseek(pool_file)
    _, plan = plan_model(md, pool)
    assert plan.across_nodes == "DataExpertParallel", plan.reason
    assert plan.data_parallel is not None and plan.data_parallel_local is not None
    objects = render_model_deployment(md, pool, plan, 1)
    (group,) = [o for o in objects if o["kind"] == "LeaderWorkerSet"]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    template = group["spec"]["leaderWorkerTemplate"]
    assert template["size"] == plan.nodes_per_instance == 2
    (leader,) = template["leaderTemplate"]["spec"]["containers"]
    (worker,) = template["workerTemplate"]["spec"]["containers"]
    assert "ray" not in leader["command"][-1] and "ray" not in worker["command"][-1]
    parser = argparse.ArgumentParser()
    for flag in (
        "tensor-parallel-size",
        "data-parallel-size",
        "data-parallel-size-local",
        "data-parallel-start-rank",
        "data-parallel-rpc-port",
    ):
        parser.add_argument(f"--{flag}", type=int)
    parser.add_argument("--data-parallel-address")
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--enable-expert-parallel", action="store_true")
    seen = []
    for index, container in enumerate((leader, worker)):
        env = {"LEADER_ADDRESS": "llm-0.llm", "WORKER_INDEX": str(index)}
        serve = _serve_words(container, env)
        assert serve[:2] == ["vllm", "serve"]
        known, _ = parser.parse_known_args(serve[3:])
        assert known.tensor_parallel_size == plan.tensor_parallel
        assert known.data_parallel_size == plan.data_parallel
        assert known.data_parallel_size_local == plan.data_parallel_local
        assert known.data_parallel_address == "llm-0.llm"
        assert known.enable_expert_parallel
        assert known.headless == (index > 0)
        seen.append((known.data_parallel_start_rank or 0, known.data_parallel_rpc_port))
    # The worker's ranks start where the leader's end; both meet on the leader's rpc port.
    assert seen[1][0] == plan.data_parallel_local
    assert seen[0][1] == seen[1][1]
    assert {"name": "dp-rpc", "containerPort": seen[0][1], "protocol": "TCP"} in leader["ports"]
    # Only the leader serves HTTP and has probes; the headless worker has neither.
    assert "readinessProbe" in leader and "readinessProbe" not in worker
    assert worker["ports"] == []
    assert service["spec"]["selector"][WORKER_INDEX_LABEL] == "0"
