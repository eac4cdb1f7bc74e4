"""Instances larger than a node: tensor parallel within each node, pipeline parallel across nodes.

When no tensor-parallel size within a node holds a model (Llama-3.1-405B in bf16 on 8 x 80 GB),
vLLM runs one instance over a group of nodes: `--tensor-parallel-size` ranks inside each node's
NVLink/HCCS domain and `--pipeline-parallel-size` stages across nodes, one stage per node. The
inter-node link is an order of magnitude slower than NVLink (DOMAIN §2: ~900 GB/s inside an H100
node against ~25 GB/s effective for 200 Gb/s RDMA), so only the pipeline's stage boundaries cross
it, never a tensor-parallel all-reduce.

Stages. vLLM gives each stage a contiguous run of decoder layers, as even as the count allows,
the last stages taking one more layer when it does not divide (vllm/distributed/utils.py,
get_pp_indices). Each accelerator holds its stage's layers: their weights split over the stage's
tensor-parallel ranks, and the KV cache of those layers only. A stage is sized as the largest
one, and as if it held both the input embedding and the LM head (the first and last stages hold
one each), a little conservative for a safe start. A stage needs at least one layer.

Throughput. Each stage reads its own weight shard per decode step, and vLLM keeps one micro-batch
per stage in flight (the scheduler's batch queue has pipeline-parallel-size entries), so one
micro-batch of batch / stages sequences leaves the pipeline every stage step. Between stages the
micro-batch's intermediate tensors cross the link: hidden states and the residual stream, each
hidden_size 16-bit values per token (IntermediateTensors of vllm/model_executor/models/llama.py).
The estimate counts a stage's step and its send one after the other:

    tokens/second ~= micro_batch / (stage_step_seconds + micro_batch x 2 x hidden x 2 B / link)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing.memory import MemoryBreakdown, embedding_params, memory_per_accelerator
from gpupool.sizing.parallelism import valid_tensor_parallel_sizes
from gpupool.sizing.request import SizingRequest
from gpupool.sizing.throughput import VLLM_DEFAULT_MAX_NUM_SEQS, decode_step

# The most nodes one instance is planned over. vLLM's multi-node examples run 2 to 4 nodes of 8
# (405B and DeepSeek-V3/R1 on H100 or Atlas 800 A2); past 8 stages the pipeline's per-token
# latency (one stage step per node, one link crossing per boundary) stops being interactive.
MAX_PIPELINE_PARALLEL = 8

# Tensors one token carries across a stage boundary (hidden states and residual) and their width.
INTERMEDIATE_TENSORS = 2
INTERMEDIATE_DTYPE_BYTES = 2


def stage_layers(layers: int, stages: int) -> int:
    """Decoder layers of the largest stage when `layers` are split over `stages` (get_pp_indices)."""
    return math.ceil(layers / stages)


def pipeline_parallel_problem(arch: Architecture, stages: int) -> str | None:
    """Why `arch` cannot be split into `stages` pipeline stages, or None when it can."""
    if stages < 1:
        return f"pipeline parallel must be at least 1, got {stages}"
    if stages > arch.layers:
        return (
            f"{arch.layers} decoder layers cannot be split into {stages} pipeline stages: "
            "each stage needs at least one layer"
        )
    return None


def _scaled(params: int, embeddings: int, layers: int, kept: int) -> int:
    """Parameters of `kept` of `layers` decoder layers, plus every embedding parameter."""
    return embeddings + math.ceil((params - embeddings) * kept / layers)


def stage_architecture(arch: Architecture, stages: int) -> Architecture:
    """The largest of `stages` pipeline stages of `arch`, as an architecture of its own: its
    layers, their parameters (dense and expert, total and active) and, conservatively, both
    vocabulary matrices. Memory and decode rooflines of the stage are those of this model."""
    kept = stage_layers(arch.layers, stages)
    embeddings = embedding_params(arch)
    params = _scaled(arch.params, embeddings, arch.layers, kept)
    update: dict[str, object] = {
        "layers": kept,
        "params": params,
        "sliding_window_layers": min(arch.sliding_window_layers, kept),
    }
    if arch.moe is not None:
        active = min(_scaled(arch.moe.active_params, embeddings, arch.layers, kept), params)
        update["moe"] = arch.moe.model_copy(update={"active_params": active})
    return arch.model_copy(update=update)


def link_bytes_per_token(arch: Architecture) -> int:
    """Bytes one token's intermediate tensors take on the link between two stages."""
    return INTERMEDIATE_TENSORS * arch.hidden_size * INTERMEDIATE_DTYPE_BYTES


@dataclass(frozen=True)
class PipelineCandidate:
    """One group of nodes: its tensor- and pipeline-parallel sizes and each accelerator's memory."""

    tensor_parallel: int
    pipeline_parallel: int
    layers_per_stage: int
    memory: MemoryBreakdown
    max_concurrent_sequences: int

    @property
    def nodes(self) -> int:
        """Nodes of the group: one pipeline stage per node."""
        return self.pipeline_parallel

    @property
    def accelerators(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


@dataclass(frozen=True)
class PipelineChoice:
    """The chosen group, if any, every group tried, and the stage counts ruled out and why."""

    chosen: PipelineCandidate | None
    meets_concurrency: bool
    candidates: tuple[PipelineCandidate, ...]
    excluded: tuple[tuple[int, str], ...]


def node_tensor_parallel(arch: Architecture, request: SizingRequest) -> int | None:
    """The tensor-parallel size of each stage: the widest valid within a node, since a node
    belongs to one group whole and a narrower size would leave accelerators idle. None when no
    size is valid, or when the request forces a size other than that one (a forced size plans
    one node)."""
    sizes = valid_tensor_parallel_sizes(arch, request.accelerators_per_node)
    widest = sizes[-1] if sizes else None
    if request.tensor_parallel is not None and request.tensor_parallel != widest:
        return None
    return widest


def choose_pipeline_parallel(
    arch: Architecture, accel: Accelerator, request: SizingRequest
) -> PipelineChoice:
    """The fewest nodes (pipeline stages, from 2 to MAX_PIPELINE_PARALLEL) that serve `arch`.

    As for tensor parallelism: a group qualifies when each accelerator holds its stage's weight
    shard, activations, runtime overhead and one full max_model_len sequence of its layers' KV;
    the fewest stages that hold `request.concurrency` sequences are preferred, else the fewest
    that start.
    """
    tp = node_tensor_parallel(arch, request)
    candidates: list[PipelineCandidate] = []
    excluded: list[tuple[int, str]] = []
    if tp is None:
        return PipelineChoice(None, False, (), ())
    for stages in range(2, MAX_PIPELINE_PARALLEL + 1):
        problem = pipeline_parallel_problem(arch, stages)
        if problem is not None:
            excluded.append((stages, problem))
            continue
        stage = stage_architecture(arch, stages)
        memory = memory_per_accelerator(stage, accel, request, tp)
        candidates.append(
            PipelineCandidate(
                tensor_parallel=tp,
                pipeline_parallel=stages,
                layers_per_stage=stage.layers,
                memory=memory,
                max_concurrent_sequences=memory.full_length_sequences(request.max_model_len),
            )
        )
    starting = [c for c in candidates if c.max_concurrent_sequences >= 1]
    preferred = [c for c in starting if c.max_concurrent_sequences >= request.concurrency]
    chosen = preferred[0] if preferred else (starting[0] if starting else None)
    return PipelineChoice(chosen, bool(preferred), tuple(candidates), tuple(excluded))


@dataclass(frozen=True)
class PipelineThroughput:
    """The decode roofline of a pipeline: its micro-batches, stage step and link crossing."""

    batch: int
    micro_batch: float
    stage_step_seconds: float
    link_seconds: float

    @property
    def tokens_per_second(self) -> float:
        cycle = self.stage_step_seconds + self.link_seconds
        return self.micro_batch / cycle if cycle > 0 else 0.0


def pipeline_throughput(
    arch: Architecture, accel: Accelerator, request: SizingRequest, candidate: PipelineCandidate
) -> PipelineThroughput:
    """The decode roofline of `candidate` (see the module docstring).

    Raises ValueError when the accelerator has no sourced memory bandwidth.
    """
    stages = candidate.pipeline_parallel
    # Each of the `stages` micro-batches in flight is scheduled up to max_num_seqs.
    batch = max(0, min(candidate.max_concurrent_sequences, stages * VLLM_DEFAULT_MAX_NUM_SEQS))
    micro = batch / stages
    step = decode_step(
        stage_architecture(arch, stages),
        accel,
        candidate.memory,
        request.precision,
        candidate.tensor_parallel,
        request.max_model_len / 2,
        math.ceil(micro),
    )
    link = micro * link_bytes_per_token(arch) / request.inter_node_bytes_per_second
    return PipelineThroughput(
        batch=batch, micro_batch=micro, stage_step_seconds=step.seconds, link_seconds=link
    )
