"""The capacity plan of a model no node holds: an instance as a group of nodes.

Two layouts can run one: tensor parallel within each node and pipeline parallel across them
(gpupool.sizing.pipeline), and, for MoE models, data-parallel attention ranks with the experts
spread over all of them (gpupool.sizing.expert_groups). Each proposes its fewest nodes; the plan
takes the layout that needs fewer nodes, and between equals the one whose decode roofline (the
link crossings counted: stage boundaries for a pipeline, the experts' all-to-all otherwise) is
faster, or that holds more sequences when the accelerator has no sourced bandwidth. The reason
says which was chosen and why, with both figures, or why no group works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing.expert_groups import (
    MAX_EXPERT_GROUP_NODES,
    ExpertGroupCandidate,
    ExpertGroupChoice,
    choose_expert_groups,
    expert_group_throughput,
)
from gpupool.sizing.instances import cost_per_hour, load_time_seconds, plan_instances
from gpupool.sizing.memory import MemoryBreakdown, weight_bytes
from gpupool.sizing.pipeline import (
    MAX_PIPELINE_PARALLEL,
    PipelineCandidate,
    PipelineChoice,
    choose_pipeline_parallel,
    link_bytes_per_token,
    pipeline_throughput,
)
from gpupool.sizing.plan import (
    AcrossNodes,
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


@dataclass(frozen=True)
class _Layout:
    """One layout's proposal for the group: its candidate, estimate and Plan fields."""

    kind: AcrossNodes
    group: PipelineCandidate | ExpertGroupCandidate
    meets_concurrency: bool
    # Decode roofline of the whole group, or None when the accelerator has no sourced bandwidth.
    tokens_per_second: float | None
    # How the roofline was reached, for the reason.
    estimate: str
    description: str
    fields: dict[str, Any]
    load_bytes: int

    @property
    def nodes(self) -> int:
        return self.group.nodes

    @property
    def accelerators(self) -> int:
        return self.group.accelerators

    @property
    def memory(self) -> MemoryBreakdown:
        return self.group.memory

    @property
    def sequences(self) -> int:
        return self.group.max_concurrent_sequences


def _link(request: SizingRequest) -> str:
    return f"{request.inter_node_bytes_per_second / GB:g} GB/s between nodes"


def _pipeline_layout(
    arch: Architecture, accel: Accelerator, request: SizingRequest, chosen: PipelineCandidate, meets: bool
) -> _Layout:
    tp, pp = chosen.tensor_parallel, chosen.pipeline_parallel
    tokens: float | None = None
    estimate = ""
    if accel.memory_bandwidth_bytes_per_second is not None:
        flow = pipeline_throughput(arch, accel, request, chosen)
        tokens = flow.tokens_per_second
        estimate = (
            f"{pp} micro-batches of {flow.micro_batch:g} sequences in flight, a stage step of "
            f"{flow.stage_step_seconds * 1000:.1f} ms and {flow.link_seconds * 1000:.2f} ms to send "
            f"{link_bytes_per_token(arch):,} B per token at {_link(request)}"
        )
    fields = {
        "tensor_parallel": tp,
        "pipeline_parallel": pp,
        "layers_per_stage": chosen.layers_per_stage,
        "kv_cache_tokens": chosen.memory.kv_cache_tokens,
    }
    # Every node reads its own stage's share of the weights at the same time.
    load = -(-weight_bytes(arch, request.precision) // pp)
    return _Layout(
        AcrossNodes.PIPELINE_PARALLEL, chosen, meets, tokens, estimate, _group(chosen, arch), fields, load
    )


def _expert_description(candidate: ExpertGroupCandidate) -> str:
    per_node = candidate.accelerators // candidate.nodes
    return (
        f"{_plural(candidate.nodes, 'node')} of {_plural(per_node, 'accelerator')}: "
        f"{candidate.data_parallel} data-parallel attention ranks of tensor parallel "
        f"{candidate.tensor_parallel} ({candidate.data_parallel_local} on each node) with the experts "
        f"spread over all {candidate.accelerators} (vLLM's --data-parallel-size {candidate.data_parallel} "
        f"--data-parallel-size-local {candidate.data_parallel_local} --enable-expert-parallel)"
    )


def _expert_layout(
    arch: Architecture, accel: Accelerator, request: SizingRequest, chosen: ExpertGroupCandidate, meets: bool
) -> _Layout:
    tokens: float | None = None
    estimate = ""
    if accel.memory_bandwidth_bytes_per_second is not None:
        flow = expert_group_throughput(arch, accel, request, chosen)
        tokens = flow.tokens_per_second
        estimate = (
            f"{chosen.data_parallel} ranks decoding {flow.rank_batch:,} sequences each, a rank step of "
            f"{flow.rank_step_seconds * 1000:.1f} ms and {flow.link_seconds * 1000:.1f} ms for the experts' "
            f"all-to-all, {flow.bytes_per_token / 10**6:,.2f} MB per token at {_link(request)}"
        )
    fields = {
        "tensor_parallel": chosen.tensor_parallel,
        "data_parallel": chosen.data_parallel,
        "data_parallel_local": chosen.data_parallel_local,
        "expert_parallel": chosen.accelerators,
        "kv_cache_tokens": chosen.data_parallel * chosen.memory.kv_cache_tokens,
    }
    # Each node reads its accelerators' shards: its share of the experts, and the rest once per
    # data-parallel rank.
    load = chosen.memory.weights_bytes * (chosen.accelerators // chosen.nodes)
    description = _expert_description(chosen)
    return _Layout(
        AcrossNodes.DATA_EXPERT_PARALLEL, chosen, meets, tokens, estimate, description, fields, load
    )


def _layouts(
    arch: Architecture, accel: Accelerator, request: SizingRequest
) -> tuple[list[_Layout], PipelineChoice, ExpertGroupChoice]:
    forced_dp = request.data_parallel
    pipeline = (
        choose_pipeline_parallel(arch, accel, request)
        if forced_dp is None or forced_dp == 1
        else PipelineChoice(None, False, (), ())
    )
    experts = choose_expert_groups(arch, accel, request)
    layouts: list[_Layout] = []
    if pipeline.chosen is not None:
        layouts.append(_pipeline_layout(arch, accel, request, pipeline.chosen, pipeline.meets_concurrency))
    if experts.chosen is not None:
        layouts.append(_expert_layout(arch, accel, request, experts.chosen, experts.meets_concurrency))
    return layouts, pipeline, experts


def _rank(layout: _Layout) -> tuple[int, int, float, int]:
    """Order of preference: targets met, fewer nodes, faster roofline, more sequences."""
    return (
        0 if layout.meets_concurrency else 1,
        layout.nodes,
        -(layout.tokens_per_second or 0.0),
        -layout.sequences,
    )


def _why_chosen(chosen: _Layout, other: _Layout | None) -> str:
    """Why `chosen` was taken over the other layout, as a clause, or ''."""
    if other is None:
        return ""
    name = {
        AcrossNodes.PIPELINE_PARALLEL: "pipeline parallelism",
        AcrossNodes.DATA_EXPERT_PARALLEL: "data parallel x expert parallel",
    }
    if chosen.meets_concurrency and not other.meets_concurrency:
        why = f"{name[other.kind]} would hold {other.sequences:,} full-length sequences, under the target"
    elif chosen.nodes != other.nodes:
        why = f"{name[other.kind]} needs {_plural(other.nodes, 'node')} against {chosen.nodes}"
    elif chosen.tokens_per_second is not None and other.tokens_per_second is not None:
        why = (
            f"on {_plural(chosen.nodes, 'node')} each it decodes an estimated "
            f"{chosen.tokens_per_second:,.0f} tokens/s against {other.tokens_per_second:,.0f} for "
            f"{name[other.kind]}, whose estimate is {other.estimate}"
        )
    else:
        why = (
            f"on {_plural(chosen.nodes, 'node')} each it holds {chosen.sequences:,} full-length sequences "
            f"against {other.sequences:,} for {name[other.kind]}"
        )
    return f" ({name[chosen.kind]} rather than {name[other.kind]}: {why})"


def _no_expert_group(arch: Architecture, choice: ExpertGroupChoice) -> str:
    if arch.moe is None or not (choice.candidates or choice.excluded):
        return ""
    if not choice.candidates:
        nodes, why = choice.excluded[0]
        return (
            f" Nor does data parallel x expert parallel on up to {MAX_EXPERT_GROUP_NODES} nodes "
            f"({nodes} nodes: {why})."
        )
    widest = choice.candidates[-1]
    return (
        f" Nor does data parallel x expert parallel on {_plural(widest.nodes, 'node')}: each of its "
        f"{widest.data_parallel} ranks would hold {_gib(widest.memory.reserved_bytes)} against "
        f"{_gib(widest.memory.usable_bytes)} usable before any KV cache."
    )


def plan_across_nodes(
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    *,
    model_name: str = "The model",
) -> Plan | str:
    """The plan of `arch` over a group of nodes, for when no node holds it; or a sentence that
    says why no group works: no layout of up to MAX_PIPELINE_PARALLEL nodes holds it, or the
    group that does is wider than request.max_nodes_per_instance (the pool's nodes).
    """
    layouts, pipeline, experts = _layouts(arch, accel, request)
    if not layouts:
        return _no_group(arch, pipeline) + _no_expert_group(arch, experts)
    layouts.sort(key=_rank)
    limit = request.max_nodes_per_instance
    if limit is not None and all(layout.nodes > limit for layout in layouts):
        smallest = min(layouts, key=lambda layout: layout.nodes)
        return (
            f"A group of {smallest.description} would hold it, but the pool has "
            f"{_plural(limit, 'node')}: add {_plural(smallest.nodes - limit, 'node')} to the pool for "
            "one instance."
        )
    fitting = [layout for layout in layouts if limit is None or layout.nodes <= limit]
    chosen = fitting[0]
    other = next((layout for layout in layouts if layout is not chosen), None)
    memory = chosen.memory
    engine = _engine_settings(accel, request)
    load_time = load_time_seconds(
        chosen.load_bytes, request.weight_load_bytes_per_second, request.engine_start_seconds
    )
    head = f"{model_name} in {_weight_format(arch, request)} does not fit one node of {accel.name}"
    if request.qps_per_instance is not None:
        qps, source = request.qps_per_instance, QpsSource.MEASURED
        origin = "measured"
    else:
        assert chosen.tokens_per_second is not None  # _check_request: a bandwidth or a measurement
        qps, source = chosen.tokens_per_second / request.mean_output_tokens, QpsSource.ESTIMATED
        origin = f"estimated from memory bandwidth and the link: {chosen.estimate}"
    instances = plan_instances(request.peak_qps, qps, request.headroom)
    target = (
        f" (target {request.concurrency:,})"
        if chosen.meets_concurrency
        else f", fewer than the {request.concurrency:,} targeted (no group of up to "
        f"{MAX_PIPELINE_PARALLEL} nodes holds them)"
    )
    ranks = "" if chosen.kind is AcrossNodes.PIPELINE_PARALLEL else " per data-parallel rank"
    reason = (
        f"{head}, so each instance is a group of {chosen.description}{_why_chosen(chosen, other)}: "
        f"each accelerator holds "
        f"{_gib(memory.weights_bytes)} of weights, {_gib(memory.activations_bytes)} of activations "
        f"and {_gib(memory.runtime_overhead_bytes)} of runtime overhead, leaving "
        f"{_gib(memory.kv_cache_bytes)} of KV cache{ranks} for "
        f"{_plural(chosen.sequences, 'sequence')} of {request.max_model_len:,} "
        f"tokens{target}; {_plural(instances, 'instance')} of {_plural(chosen.nodes, 'node')} "
        f"({_plural(chosen.accelerators, 'accelerator')} each) "
        f"{'serves' if instances == 1 else 'serve'} {request.peak_qps:g} QPS at peak with "
        f"{request.headroom:.0%} headroom at {qps:,.2f} QPS each ({origin})."
    )
    return Plan(
        **engine,
        **chosen.fields,
        accelerator=accel.name,
        fits=True,
        reason=reason,
        precision=request.precision,
        kv_cache_dtype=request.kv_cache_dtype,
        across_nodes=chosen.kind,
        nodes_per_instance=chosen.nodes,
        inter_node_bytes_per_second=request.inter_node_bytes_per_second,
        accelerators_per_instance=chosen.accelerators,
        instances=instances,
        instances_per_node=0,
        nodes=instances * chosen.nodes,
        accelerators=instances * chosen.accelerators,
        max_model_len=request.max_model_len,
        max_concurrent_sequences=chosen.sequences,
        memory_per_accelerator=memory,
        qps_per_instance=qps,
        qps_per_instance_source=source,
        cost_per_hour=cost_per_hour(instances, chosen.accelerators, request.price_per_accelerator_hour),
        load_time_seconds=load_time,
    )
