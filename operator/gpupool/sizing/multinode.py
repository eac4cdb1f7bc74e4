"""The capacity plan of a model no node holds: an instance as a group of nodes.

gpupool.sizing.pipeline chooses the group (tensor parallel within each node, pipeline parallel
across them); this module turns it into a Plan with the numbers in its reason, or says why no
group works.
"""

from __future__ import annotations

from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing.instances import cost_per_hour, load_time_seconds, plan_instances
from gpupool.sizing.memory import weight_bytes
from gpupool.sizing.pipeline import (
    MAX_PIPELINE_PARALLEL,
    PipelineCandidate,
    PipelineChoice,
    choose_pipeline_parallel,
    link_bytes_per_token,
    pipeline_throughput,
)
from gpupool.sizing.plan import (
    Plan,
    QpsSource,
    _engine_settings,
    _gib,
    _plural,
    _weight_format,
)
from gpupool.sizing.request import SizingRequest

GB = 10**9


def _no_group(arch: Architecture, choice: PipelineChoice) -> str:
    """Why no group of nodes serves the model either, as one sentence."""
    if not choice.candidates:
        if choice.excluded:
            return f"Nor does a group of nodes: {choice.excluded[0][1]}."
        return (
            "A group of nodes runs every node at its widest valid tensor-parallel size; unset "
            "tensorParallel to plan one."
        )
    widest = choice.candidates[-1]
    memory = widest.memory
    if memory.shortfall_bytes > 0:
        problem = (
            f"each accelerator would still need {_gib(memory.reserved_bytes)} against "
            f"{_gib(memory.usable_bytes)} usable"
        )
    else:
        problem = f"the KV cache left on each accelerator holds {memory.kv_cache_tokens:,} tokens"
    return (
        f"Nor does a group of {widest.nodes} nodes, the most gpupool plans one instance over "
        f"(tensor parallel {widest.tensor_parallel}, pipeline parallel {widest.pipeline_parallel}, "
        f"{widest.layers_per_stage} of {arch.layers} layers per stage): {problem}."
    )


def _group(candidate: PipelineCandidate, arch: Architecture) -> str:
    return (
        f"{_plural(candidate.nodes, 'node')} of {_plural(candidate.tensor_parallel, 'accelerator')}: "
        f"tensor parallel {candidate.tensor_parallel} within each node and pipeline parallel "
        f"{candidate.pipeline_parallel} across them, up to {candidate.layers_per_stage} of "
        f"{arch.layers} layers per stage"
    )


def plan_across_nodes(
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    *,
    model_name: str = "The model",
) -> Plan | str:
    """The plan of `arch` over a group of nodes, for when no node holds it; or a sentence that
    says why no group works: none of up to MAX_PIPELINE_PARALLEL nodes holds it, or the group
    that does is wider than request.max_nodes_per_instance (the pool's nodes).
    """
    choice = choose_pipeline_parallel(arch, accel, request)
    chosen = choice.chosen
    if chosen is None:
        return _no_group(arch, choice)
    limit = request.max_nodes_per_instance
    if limit is not None and chosen.nodes > limit:
        return (
            f"A group of {_group(chosen, arch)} would hold it, but the pool has "
            f"{_plural(limit, 'node')}: add {_plural(chosen.nodes - limit, 'node')} to the pool for "
            "one instance."
        )
    memory = chosen.memory
    tp, pp = chosen.tensor_parallel, chosen.pipeline_parallel
    engine = _engine_settings(accel, request)
    load_time = load_time_seconds(
        # Every node reads its own stage's share of the weights at the same time.
        -(-weight_bytes(arch, request.precision) // pp),
        request.weight_load_bytes_per_second,
        request.engine_start_seconds,
    )
    head = f"{model_name} in {_weight_format(arch, request)} does not fit one node of {accel.name}"
    if request.qps_per_instance is not None:
        qps, source = request.qps_per_instance, QpsSource.MEASURED
        origin = "measured"
    else:
        flow = pipeline_throughput(arch, accel, request, chosen)
        qps, source = flow.tokens_per_second / request.mean_output_tokens, QpsSource.ESTIMATED
        origin = (
            f"estimated from memory bandwidth and the link: {pp} micro-batches of "
            f"{flow.micro_batch:g} sequences in flight, a stage step of "
            f"{flow.stage_step_seconds * 1000:.1f} ms and {flow.link_seconds * 1000:.2f} ms to send "
            f"{link_bytes_per_token(arch):,} B per token at "
            f"{request.inter_node_bytes_per_second / GB:g} GB/s between nodes"
        )
    instances = plan_instances(request.peak_qps, qps, request.headroom)
    target = (
        f" (target {request.concurrency:,})"
        if choice.meets_concurrency
        else f", fewer than the {request.concurrency:,} targeted (no group of up to "
        f"{MAX_PIPELINE_PARALLEL} nodes holds them)"
    )
    reason = (
        f"{head}, so each instance is a group of {_group(chosen, arch)}: each accelerator holds "
        f"{_gib(memory.weights_bytes)} of weights, {_gib(memory.activations_bytes)} of activations "
        f"and {_gib(memory.runtime_overhead_bytes)} of runtime overhead, leaving "
        f"{_gib(memory.kv_cache_bytes)} of KV cache for "
        f"{_plural(chosen.max_concurrent_sequences, 'sequence')} of {request.max_model_len:,} "
        f"tokens{target}; {_plural(instances, 'instance')} of {_plural(chosen.nodes, 'node')} "
        f"({_plural(chosen.accelerators, 'accelerator')} each) "
        f"{'serves' if instances == 1 else 'serve'} {request.peak_qps:g} QPS at peak with "
        f"{request.headroom:.0%} headroom at {qps:,.2f} QPS each ({origin})."
    )
    plan = Plan(
        **engine,
        accelerator=accel.name,
        fits=True,
        reason=reason,
        precision=request.precision,
        kv_cache_dtype=request.kv_cache_dtype,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        nodes_per_instance=chosen.nodes,
        layers_per_stage=chosen.layers_per_stage,
        inter_node_bytes_per_second=request.inter_node_bytes_per_second,
        accelerators_per_instance=chosen.accelerators,
        instances=instances,
        instances_per_node=0,
        nodes=instances * chosen.nodes,
        accelerators=instances * chosen.accelerators,
        max_model_len=request.max_model_len,
        max_concurrent_sequences=chosen.max_concurrent_sequences,
        memory_per_accelerator=memory,
        kv_cache_tokens=memory.kv_cache_tokens,
        qps_per_instance=qps,
        qps_per_instance_source=source,
        cost_per_hour=cost_per_hour(instances, chosen.accelerators, request.price_per_accelerator_hour),
        load_time_seconds=load_time,
    )
    return plan
