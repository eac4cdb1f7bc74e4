"""The capacity plan: how many instances, accelerators and nodes, at what cost, and why.

"To serve model M at Q QPS peak with precision P on hardware H, how many instances, GPUs,
servers, and what cost per hour?" A plan answers that for one accelerator; compare_accelerators
answers it for several side by side. A model that cannot run on the hardware is a plan with
fits=False and a reason that carries the numbers and what to change, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TypedDict

from pydantic import Field

from gpupool.api.base import ApiModel
from gpupool.catalog.types import Accelerator, Architecture, KVCacheDtype, Precision, Vendor
from gpupool.sizing.instances import (
    cost_per_hour,
    instances_per_node,
    load_time_seconds,
    nodes_needed,
    plan_instances,
)
from gpupool.sizing.memory import (
    MemoryBreakdown,
    bytes_per_param,
    memory_per_accelerator,
    weight_bytes,
)
from gpupool.sizing.parallelism import (
    TENSOR_PARALLEL_SIZES,
    TensorParallelCandidate,
    TensorParallelChoice,
    choose_tensor_parallel,
    tensor_parallel_problem,
)
from gpupool.sizing.request import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    GIB,
    SizingRequest,
    default_max_num_batched_tokens,
    default_max_num_seqs,
)
from gpupool.sizing.throughput import DecodeRegime, decode_batch, decode_step, estimate_qps_per_instance


class AcrossNodes(StrEnum):
    """How an instance larger than a node is split over its group of nodes."""

    # Tensor parallel within each node, pipeline stages across nodes (gpupool.sizing.pipeline).
    PIPELINE_PARALLEL = "PipelineParallel"
    # Data-parallel attention ranks with the experts over all of them (gpupool.sizing.expert_groups).
    DATA_EXPERT_PARALLEL = "DataExpertParallel"


class QpsSource(StrEnum):
    """Where the QPS-per-instance figure of a plan comes from."""

    MEASURED = "measured"
    ESTIMATED = "estimated"


class Plan(ApiModel):
    """A capacity plan for one model on one kind of accelerator."""

    accelerator: str = Field(description="Catalog name of the accelerator planned for.")
    fits: bool = Field(description="Whether the model can be served, on one node or a group of nodes.")
    reason: str = Field(
        description=("One sentence with the numbers behind the plan; when it does not fit, what to change.")
    )
    precision: Precision = Field(description="Weight precision planned for.")
    kv_cache_dtype: KVCacheDtype = Field(description="KV cache number format planned for.")
    tensor_parallel: int = Field(
        description=("Tensor-parallel size of an instance; when it does not fit, the widest size tried."),
        ge=1,
    )
    accelerators_per_instance: int = Field(
        description="Accelerators one instance uses: tensor x pipeline x data parallel.", ge=1
    )
    instances: int = Field(description="Instances needed for the peak with headroom.", ge=0)
    instances_per_node: int = Field(description="Instances one node fits.", ge=0)
    nodes: int = Field(description="Nodes the instances need.", ge=0)
    accelerators: int = Field(description="Accelerators all instances use together.", ge=0)
    max_model_len: int = Field(description="Longest sequence in tokens.", ge=1)
    max_concurrent_sequences: int = Field(
        description="Full-length sequences the KV cache of one instance holds at once.", ge=0
    )
    kv_cache_tokens: int = Field(
        default=0, description="Tokens the KV cache of one instance holds (vLLM's GPU KV cache size).", ge=0
    )
    memory_per_accelerator: MemoryBreakdown = Field(description="How each accelerator's memory is spent.")
    qps_per_instance: float | None = Field(
        default=None, description="Requests per second one instance serves.", ge=0
    )
    qps_per_instance_source: QpsSource | None = Field(
        default=None, description="measured (given) or estimated (memory-bandwidth roofline)."
    )
    cost_per_hour: float | None = Field(
        default=None, description="Accelerator cost of all instances per hour.", ge=0
    )
    load_time_seconds: int = Field(
        description="Estimated seconds from start to serving, for sizing startup probes.", ge=0
    )
    gpu_memory_utilization: float = Field(
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        description="vLLM's --gpu-memory-utilization the plan was made for and the engine is given.",
        gt=0,
        le=1,
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        description="vLLM's --max-num-batched-tokens the plan was made for and the engine is given.",
        ge=1,
    )
    max_num_seqs: int | None = Field(
        default=None,
        description="vLLM's --max-num-seqs the plan was made for and the engine is given.",
        ge=1,
    )
    pipeline_parallel: int | None = Field(
        default=None, description="Pipeline-parallel stages, when the plan uses them.", ge=1
    )
    expert_parallel: int | None = Field(
        default=None,
        description="Ranks the experts are spread over (vLLM's --enable-expert-parallel): tensor x data "
        "parallel, when used.",
        ge=1,
    )
    data_parallel: int | None = Field(
        default=None,
        description="Data-parallel attention ranks (vLLM's --data-parallel-size), each a tensor-parallel "
        "group with its own KV cache and a whole copy of the non-expert weights, when used.",
        ge=1,
    )
    nodes_per_instance: int = Field(
        default=1,
        description="Nodes one instance spans: 1, or the nodes of its group when larger.",
        ge=1,
    )
    across_nodes: AcrossNodes | None = Field(
        default=None,
        description="How a multi-node instance is split: PipelineParallel (tensor parallel within each "
        "node, pipeline stages across) or DataExpertParallel (data-parallel attention ranks, experts over "
        "all of them); the reason says why.",
    )
    data_parallel_local: int | None = Field(
        default=None,
        description="Data-parallel ranks on each node of a DataExpertParallel group (vLLM's "
        "--data-parallel-size-local).",
        ge=1,
    )
    layers_per_stage: int | None = Field(
        default=None, description="Decoder layers of the largest pipeline stage, when pipelined.", ge=1
    )
    inter_node_bytes_per_second: int | None = Field(
        default=None,
        description="Effective bandwidth between the nodes of an instance the plan assumed, when multi-node.",
        ge=1,
    )


def _gib(size: int) -> str:
    return f"{size / GIB:,.1f} GiB"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _either(options: Sequence[str]) -> str:
    if len(options) <= 1:
        return "".join(options)
    return f"{', '.join(options[:-1])} or {options[-1]}"


def _weight_format(arch: Architecture, request: SizingRequest) -> str:
    """What the weights are sized in: the checkpoint's own format, or the requested precision."""
    if arch.quantization is not None:
        return f"its {arch.quantization.method.value} checkpoint"
    return request.precision.value


def _check_request(arch: Architecture, accel: Accelerator, request: SizingRequest) -> None:
    """Reject input no plan can satisfy, as opposed to a model that merely does not fit."""
    if (request.data_parallel or 1) > 1 and arch.moe is None:
        raise ValueError(
            "data-parallel attention spreads a mixture-of-experts model's experts over its ranks; "
            "this model has no experts: leave dataParallel unset"
        )
    if request.precision not in accel.supported_precisions:
        supported = ", ".join(p.value for p in accel.supported_precisions)
        raise ValueError(
            f"{accel.name} cannot serve {request.precision.value} weights; it supports {supported}"
        )
    if request.kv_cache_dtype is KVCacheDtype.FP8 and accel.vendor is Vendor.ASCEND:
        raise ValueError(f"{accel.name} has no fp8 format, so it cannot hold an fp8 KV cache")
    if request.max_model_len > arch.max_position_embeddings:
        raise ValueError(
            f"maxModelLen {request.max_model_len:,} exceeds the model's "
            f"{arch.max_position_embeddings:,}-token context (max_position_embeddings)"
        )
    if request.qps_per_instance is None and accel.memory_bandwidth_bytes_per_second is None:
        raise ValueError(
            f"{accel.name} has no published memory bandwidth, so QPS per instance cannot be "
            "estimated: measure it and set qpsPerInstance"
        )


def _ruled_out(choice: TensorParallelChoice, above: int, accelerators_per_node: int) -> str:
    """Why the sizes wider than `above` were not tried, as a parenthesis, or ''."""
    wider = [(tp, why) for tp, why in choice.excluded if tp > above]
    reasons = [
        f"tensor parallel {tp} is ruled out: {why}" for tp, why in wider if tp <= accelerators_per_node
    ]
    if any(tp > accelerators_per_node for tp, _ in wider):
        reasons.append(f"a node has only {_plural(accelerators_per_node, 'accelerator')}")
    return f" ({'; '.join(reasons)})" if reasons else ""


def _fits_at(
    arch: Architecture, accel: Accelerator, request: SizingRequest, tp: int
) -> MemoryBreakdown | None:
    memory = memory_per_accelerator(arch, accel, request, tp)
    return memory if memory.full_length_sequences(request.max_model_len) >= 1 else None


def _advice(
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    widest: TensorParallelCandidate,
) -> str:
    """What would make the model fit: shorter context, fp8 KV, bigger nodes, lower precision,
    more memory per accelerator, or pipeline parallelism."""
    memory = widest.memory
    tp = widest.tensor_parallel
    advice: list[str] = []
    if memory.shortfall_bytes == 0 and memory.kv_cache_tokens >= 1:
        advice.append(f"lower maxModelLen to {memory.kv_cache_tokens:,} tokens or fewer")
    if (
        request.kv_cache_dtype is not KVCacheDtype.FP8
        and accel.vendor is not Vendor.ASCEND
        and memory.shortfall_bytes == 0
    ):
        fp8_kv = request.model_copy(update={"kv_cache_dtype": KVCacheDtype.FP8})
        if _fits_at(arch, accel, fp8_kv, tp) is not None:
            advice.append("use an fp8 KV cache")
    wider = [
        size
        for size in TENSOR_PARALLEL_SIZES
        if size > request.accelerators_per_node
        and tensor_parallel_problem(arch, size, size) is None
        and _fits_at(arch, accel, request, size) is not None
    ]
    if wider:
        advice.append(f"use nodes of {wider[0]} accelerators (tensor parallel {wider[0]})")
    # A pre-quantised checkpoint is sized in its own format: another precision is another checkpoint.
    smaller = [
        p
        for p in accel.supported_precisions
        if arch.quantization is None
        and bytes_per_param(p) < bytes_per_param(request.precision)
        and _fits_at(arch, accel, request.model_copy(update={"precision": p}), tp) is not None
    ]
    if smaller:
        advice.append(f"serve it in {_either([p.value for p in smaller])}")
    one_sequence = memory.sequence_bytes(request.max_model_len)
    needed = math.ceil((memory.reserved_bytes + one_sequence) / request.gpu_memory_utilization)
    advice.append(f"use accelerators with at least {_gib(needed)} of memory")
    return _either(advice)


def _does_not_fit_reason(
    model: str,
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    choice: TensorParallelChoice,
) -> str:
    widest = choice.largest
    memory = widest.memory
    tp = widest.tensor_parallel
    ruled_out = _ruled_out(choice, tp, request.accelerators_per_node)
    head = f"{model} in {_weight_format(arch, request)} does not fit {accel.name}"
    if memory.shortfall_bytes > 0:
        problem = (
            f"even at tensor parallel {tp}{ruled_out} each accelerator needs "
            f"{_gib(memory.weights_bytes)} of weights, {_gib(memory.activations_bytes)} of "
            f"activations and {_gib(memory.runtime_overhead_bytes)} of runtime overhead, "
            f"{_gib(memory.reserved_bytes)} in all, against {_gib(memory.usable_bytes)} usable "
            f"({request.gpu_memory_utilization:.0%} of {_gib(memory.total_bytes)}), "
            f"{_gib(memory.shortfall_bytes)} short"
        )
    else:
        one_sequence = memory.sequence_bytes(request.max_model_len)
        problem = (
            f"at tensor parallel {tp}{ruled_out} the {_gib(memory.kv_cache_bytes)} left for KV "
            f"cache holds {memory.kv_cache_tokens:,} tokens but one sequence of "
            f"{request.max_model_len:,} tokens needs {_gib(one_sequence)}"
        )
    return f"{head}: {problem}; {_advice(arch, accel, request, widest)}."


_BOUND_BY = {
    DecodeRegime.WEIGHT_READS: "reading the weight shard",
    DecodeRegime.KV_READS: "reading the batch's KV cache",
    DecodeRegime.COMPUTE: "compute",
}


def _fits_reason(
    model: str,
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    choice: TensorParallelChoice,
    chosen: TensorParallelCandidate,
    instances: int,
    nodes: int,
    qps: float,
    source: QpsSource,
) -> str:
    memory = chosen.memory
    tp = chosen.tensor_parallel
    if choice.meets_concurrency:
        target = f" (target {request.concurrency:,})"
    else:
        widest = choice.largest
        target = (
            f", fewer than the {request.concurrency:,} targeted: no tensor-parallel size within "
            f"a node holds them ({_plural(widest.accelerators, 'accelerator')} hold "
            f"{widest.max_concurrent_sequences:,}), so the smallest that starts is used"
        )
    qps_origin = "measured"
    if source is QpsSource.ESTIMATED:
        step = decode_step(
            arch,
            accel,
            memory,
            request.precision,
            tp,
            request.max_model_len / 2,
            decode_batch(chosen.rank_sequences),
        )
        qps_origin = f"estimated from memory bandwidth; {_BOUND_BY[step.regime]} bounds each decode step"
    if chosen.data_parallel > 1:
        experts = (
            f" with {chosen.data_parallel} data-parallel attention ranks and the experts spread over "
            f"all {chosen.accelerators} (vLLM's --data-parallel-size {chosen.data_parallel} "
            f"--enable-expert-parallel) because {chosen.data_parallel_because}"
        )
    elif chosen.expert_parallel_because:
        experts = (
            f" with expert parallelism (vLLM's --enable-expert-parallel: experts whole on each rank) "
            f"because {chosen.expert_parallel_because}"
        )
    else:
        experts = ""
    if chosen.data_parallel_not_chosen:
        experts += f" ({chosen.data_parallel_not_chosen})"
    size = chosen.accelerators
    return (
        f"{model} in {_weight_format(arch, request)} fits {accel.name} at tensor parallel {tp}{experts}: "
        f"each accelerator holds {_gib(memory.weights_bytes)} of weights, "
        f"{_gib(memory.activations_bytes)} of activations and "
        f"{_gib(memory.runtime_overhead_bytes)} of runtime overhead, leaving "
        f"{_gib(memory.kv_cache_bytes)} of KV cache for "
        f"{_plural(chosen.max_concurrent_sequences, 'sequence')} of "
        f"{request.max_model_len:,} tokens{target}; {_plural(instances, 'instance')} of "
        f"{_plural(size, 'accelerator')} on {_plural(nodes, 'node')} "
        f"{'serves' if instances == 1 else 'serve'} "
        f"{request.peak_qps:g} QPS at peak with {request.headroom:.0%} headroom at "
        f"{qps:,.2f} QPS each ({qps_origin})."
    )


class _EngineSettings(TypedDict):
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int


def _engine_settings(accel: Accelerator, request: SizingRequest) -> _EngineSettings:
    """The engine settings a plan carries so that the rendered command line is the one sized."""
    return _EngineSettings(
        gpu_memory_utilization=request.gpu_memory_utilization,
        max_num_batched_tokens=request.max_num_batched_tokens or default_max_num_batched_tokens(accel),
        max_num_seqs=request.max_num_seqs or default_max_num_seqs(accel),
    )


def _forced_size_problem(
    model: str, arch: Architecture, accel: Accelerator, request: SizingRequest, choice: TensorParallelChoice
) -> str:
    (tp, why) = choice.excluded[0]
    valid = [
        str(size)
        for size in TENSOR_PARALLEL_SIZES
        if tensor_parallel_problem(arch, request.accelerators_per_node, size) is None
    ]
    sizes = f"; sizes that work within a node: {_either(valid)}" if valid else ""
    return f"{model} cannot run at tensor parallel {tp} on {accel.name}: {why}{sizes}."


def plan_deployment(
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    *,
    model_name: str = "The model",
) -> Plan:
    """The capacity plan for serving `arch` on `accel` as `request` asks.

    Never raises because the model does not fit: that is a plan with fits=False and a reason.
    Raises ValueError for input no plan can satisfy: a precision the accelerator cannot
    serve, an fp8 KV cache on hardware without fp8, a maxModelLen beyond the model's context,
    or no way to know QPS per instance (no measurement and no published bandwidth).
    """
    _check_request(arch, accel, request)
    choice = choose_tensor_parallel(arch, accel, request)
    load_time = load_time_seconds(
        weight_bytes(arch, request.precision),
        request.weight_load_bytes_per_second,
        request.engine_start_seconds,
    )
    measured = request.qps_per_instance
    chosen = choice.chosen
    engine = _engine_settings(accel, request)
    if chosen is None and not choice.candidates:
        # A forced tensor-parallel size that cannot work: say why, with the memory it would take.
        tp = choice.excluded[0][0]
        reason = _forced_size_problem(model_name, arch, accel, request, choice)
        if request.tensor_parallel is None and (request.data_parallel or 1) > request.accelerators_per_node:
            # More data-parallel ranks than a node has accelerators: a group of nodes, if any.
            from gpupool.sizing.multinode import plan_across_nodes

            across = plan_across_nodes(arch, accel, request, model_name=model_name)
            if isinstance(across, Plan):
                return across
            reason = f"{reason} {across}"
        return Plan(
            **engine,
            accelerator=accel.name,
            fits=False,
            reason=reason,
            precision=request.precision,
            kv_cache_dtype=request.kv_cache_dtype,
            tensor_parallel=tp,
            accelerators_per_instance=tp,
            instances=0,
            instances_per_node=instances_per_node(request.accelerators_per_node, tp),
            nodes=0,
            accelerators=0,
            max_model_len=request.max_model_len,
            max_concurrent_sequences=0,
            memory_per_accelerator=memory_per_accelerator(arch, accel, request, tp),
            kv_cache_tokens=0,
            qps_per_instance=measured,
            qps_per_instance_source=QpsSource.MEASURED if measured is not None else None,
            cost_per_hour=None,
            load_time_seconds=load_time,
        )
    if chosen is None:
        # Deferred: gpupool.sizing.multinode builds on this module's Plan.
        from gpupool.sizing.multinode import plan_across_nodes

        across = plan_across_nodes(arch, accel, request, model_name=model_name)
        if isinstance(across, Plan):
            return across
        widest = choice.largest
        return Plan(
            **engine,
            accelerator=accel.name,
            fits=False,
            reason=f"{_does_not_fit_reason(model_name, arch, accel, request, choice)} {across}",
            precision=request.precision,
            kv_cache_dtype=request.kv_cache_dtype,
            tensor_parallel=widest.tensor_parallel,
            accelerators_per_instance=widest.tensor_parallel,
            instances=0,
            instances_per_node=instances_per_node(request.accelerators_per_node, widest.tensor_parallel),
            nodes=0,
            accelerators=0,
            max_model_len=request.max_model_len,
            max_concurrent_sequences=0,
            memory_per_accelerator=widest.memory,
            kv_cache_tokens=widest.memory.kv_cache_tokens,
            qps_per_instance=measured,
            qps_per_instance_source=QpsSource.MEASURED if measured is not None else None,
            cost_per_hour=None,
            load_time_seconds=load_time,
        )

    tp = chosen.tensor_parallel
    size = chosen.accelerators
    if measured is not None:
        qps, source = measured, QpsSource.MEASURED
    else:
        # Each data-parallel rank decodes its own sequences from its own weight shard.
        qps = chosen.data_parallel * estimate_qps_per_instance(
            accel,
            chosen.memory,
            request.max_model_len,
            chosen.rank_sequences,
            request.mean_output_tokens,
        )
        source = QpsSource.ESTIMATED
    instances = plan_instances(request.peak_qps, qps, request.headroom)
    nodes = nodes_needed(instances, request.accelerators_per_node, size)
    return Plan(
        **engine,
        accelerator=accel.name,
        fits=True,
        reason=_fits_reason(model_name, arch, accel, request, choice, chosen, instances, nodes, qps, source),
        precision=request.precision,
        kv_cache_dtype=request.kv_cache_dtype,
        tensor_parallel=tp,
        accelerators_per_instance=size,
        instances=instances,
        instances_per_node=instances_per_node(request.accelerators_per_node, size),
        nodes=nodes,
        accelerators=instances * size,
        max_model_len=request.max_model_len,
        max_concurrent_sequences=chosen.max_concurrent_sequences,
        memory_per_accelerator=chosen.memory,
        kv_cache_tokens=chosen.data_parallel * chosen.memory.kv_cache_tokens,
        qps_per_instance=qps,
        qps_per_instance_source=source,
        cost_per_hour=cost_per_hour(instances, size, request.price_per_accelerator_hour),
        load_time_seconds=load_time,
        expert_parallel=size if chosen.expert_parallel else None,
        data_parallel=chosen.data_parallel if chosen.data_parallel > 1 else None,
    )


RequestSource = SizingRequest | Sequence[SizingRequest] | Callable[[Accelerator], SizingRequest]


def compare_accelerators(
    arch: Architecture,
    accelerators: Sequence[Accelerator],
    requests: RequestSource,
    *,
    model_name: str = "The model",
) -> list[Plan]:
    """One plan per accelerator, in the order given, for a side-by-side comparison.

    `requests` is one request for all accelerators, a sequence with one request per
    accelerator (in the same order), or a function from an accelerator to its request (e.g. to
    fill in a per-accelerator price or a measured QPS).
    """
    if isinstance(requests, SizingRequest):
        per_accelerator: list[SizingRequest] = [requests] * len(accelerators)
    elif callable(requests):
        per_accelerator = [requests(accel) for accel in accelerators]
    else:
        per_accelerator = list(requests)
        if len(per_accelerator) != len(accelerators):
            raise ValueError(f"got {len(per_accelerator)} requests for {len(accelerators)} accelerators")
    return [
        plan_deployment(arch, accel, request, model_name=model_name)
        for accel, request in zip(accelerators, per_accelerator, strict=True)
    ]
