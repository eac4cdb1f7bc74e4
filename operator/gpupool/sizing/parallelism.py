"""Choosing the tensor-parallel size of an instance."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing.memory import MemoryBreakdown, memory_per_accelerator
from gpupool.sizing.request import SizingRequest

# The sizes vLLM and vllm-ascend are run with inside one node; TP groups never straddle nodes.
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
# Data-parallel attention ranks tried for an MoE model, tp x data parallel within one node.
DATA_PARALLEL_SIZES = (2, 4, 8)


def _block_problem(what: str, width: int, tp: int, block: int) -> str | None:
    if width % tp == 0 and (width // tp) % block == 0:
        return None
    return (
        f"the {what} width {width:,} over {tp} ranks is {width / tp:g} per rank, not a multiple "
        f"of the {block}-wide FP8 blocks (vLLM refuses to start)"
    )


def tensor_parallel_problem(
    arch: Architecture, accelerators_per_node: int, tp: int, *, expert_parallel: bool = False
) -> str | None:
    """Why `tp` cannot serve `arch` on nodes of `accelerators_per_node`, or None if it can.

    vLLM shards query heads evenly (num_attention_heads % tp == 0) and either splits KV heads
    evenly (kv_heads % tp == 0) or replicates them evenly (tp % kv_heads == 0), see
    QKVParallelLinear in vllm/model_executor/layers/linear.py. Latent attention keeps one latent
    per rank, so it has no KV-head constraint. Block-wise FP8 needs every rank's share of an
    MLP to be whole blocks (gpupool.catalog.formats); with `expert_parallel` the experts are
    placed whole on ranks instead of split, so only the dense MLP keeps that rule.
    """
    if tp > accelerators_per_node:
        unit = "accelerator" if accelerators_per_node == 1 else "accelerators"
        return f"a node has only {accelerators_per_node} {unit}"
    if arch.attention_heads % tp != 0:
        return f"{arch.attention_heads} attention heads do not divide by {tp}"
    if arch.mla is None and arch.kv_heads % tp != 0 and tp % arch.kv_heads != 0:
        return f"{arch.kv_heads} KV heads neither divide by {tp} nor divide it"
    block = arch.quantization.block_size if arch.quantization is not None else None
    if block is None or tp == 1:
        return None
    if arch.moe is None and arch.intermediate_size is not None:
        return _block_problem("MLP", arch.intermediate_size, tp, block)
    if arch.moe is not None and not expert_parallel:
        width = arch.moe.expert_intermediate_size or arch.intermediate_size
        if width is not None:
            return _block_problem("expert MLP", width, tp, block)
    return None


def valid_tensor_parallel_sizes(arch: Architecture, accelerators_per_node: int) -> tuple[int, ...]:
    """The sizes in TENSOR_PARALLEL_SIZES that can serve `arch` within one node."""
    return tuple(
        tp for tp in TENSOR_PARALLEL_SIZES if tensor_parallel_problem(arch, accelerators_per_node, tp) is None
    )


@dataclass(frozen=True)
class TensorParallelCandidate:
    """One valid tensor-parallel size and what it leaves for the KV cache."""

    tensor_parallel: int
    memory: MemoryBreakdown
    # Full-length sequences the whole instance holds: every data-parallel rank's together.
    max_concurrent_sequences: int
    # Why the experts are placed whole on ranks (vLLM's --enable-expert-parallel), or None.
    expert_parallel_because: str | None = None
    # Data-parallel attention ranks (vLLM's --data-parallel-size), each a tensor-parallel group.
    data_parallel: int = 1
    # Why data-parallel attention was chosen over tensor parallelism alone, or None.
    data_parallel_because: str | None = None
    # Why data-parallel attention, tried at this size, was not chosen, or None.
    data_parallel_not_chosen: str | None = None

    @property
    def accelerators(self) -> int:
        """Accelerators one instance takes: tensor parallel x data parallel."""
        return self.tensor_parallel * self.data_parallel

    @property
    def expert_parallel(self) -> bool:
        return self.expert_parallel_because is not None or self.data_parallel > 1

    @property
    def rank_sequences(self) -> int:
        """Full-length sequences one data-parallel rank holds."""
        return self.max_concurrent_sequences // self.data_parallel


@dataclass(frozen=True)
class TensorParallelChoice:
    """The chosen size, every candidate considered, and the sizes ruled out and why."""

    chosen: TensorParallelCandidate | None
    meets_concurrency: bool
    candidates: tuple[TensorParallelCandidate, ...]
    excluded: tuple[tuple[int, str], ...]

    @property
    def largest(self) -> TensorParallelCandidate:
        """The widest valid candidate: the one with the most memory per weight shard."""
        return self.candidates[-1]


def _data_parallel_motive(arch: Architecture, plain: TensorParallelCandidate) -> str | None:
    """Why data-parallel attention is worth trying at this many accelerators, or None.

    vLLM's recipes serve MoE models with --enable-expert-parallel and --data-parallel-size in
    two cases: latent attention (DeepSeek-V3/R1), whose one KV latent a layer is held whole by
    every tensor-parallel rank, so tensor parallelism multiplies the KV cache instead of
    splitting it; and block-FP8 experts that tensor parallelism cannot cut into whole blocks
    (Qwen3-Coder-480B-A35B-Instruct-FP8 on 8 x H200: `--enable-expert-parallel
    --data-parallel-size 8`, https://docs.vllm.ai/projects/recipes/en/latest/Qwen/Qwen3-Coder-480B-A35B.html).
    """
    if arch.moe is None or plain.accelerators == 1:
        return None
    if arch.mla is not None:
        return "latent attention keeps the whole KV latent on every tensor-parallel rank"
    return plain.expert_parallel_because


def _laid_out(
    arch: Architecture, accel: Accelerator, request: SizingRequest, plain: TensorParallelCandidate
) -> TensorParallelCandidate:
    """`plain` as the request lays it out: as asked (request.data_parallel), as it is when the
    request forces its tensor-parallel size, or the layout of its accelerators that holds most."""
    dp = request.data_parallel
    if dp is None:
        return (
            plain if request.tensor_parallel is not None else _with_data_parallel(arch, accel, request, plain)
        )
    if dp == 1:
        return plain
    memory = memory_per_accelerator(arch, accel, request, plain.tensor_parallel, dp)
    return TensorParallelCandidate(
        tensor_parallel=plain.tensor_parallel,
        memory=memory,
        max_concurrent_sequences=dp * memory.full_length_sequences(request.max_model_len),
        data_parallel=dp,
        data_parallel_because="the request asks for it",
    )


def _with_data_parallel(
    arch: Architecture, accel: Accelerator, request: SizingRequest, plain: TensorParallelCandidate
) -> TensorParallelCandidate:
    """The layout of `plain.accelerators` accelerators that holds the most full-length
    sequences: tensor parallelism alone, or tp x data-parallel attention ranks with the
    experts spread over all of them. Ties go to tensor parallelism alone."""
    motive = _data_parallel_motive(arch, plain)
    if motive is None:
        return plain
    best = plain
    size = plain.accelerators
    runner_up: tuple[int, int] | None = None
    for dp in DATA_PARALLEL_SIZES:
        tp = size // dp
        if dp > size or size % dp != 0:
            continue
        if tensor_parallel_problem(arch, request.accelerators_per_node, tp, expert_parallel=True) is not None:
            continue
        memory = memory_per_accelerator(arch, accel, request, tp, dp)
        sequences = dp * memory.full_length_sequences(request.max_model_len)
        if runner_up is None or sequences > runner_up[1]:
            runner_up = (dp, sequences)
        if sequences > best.max_concurrent_sequences:
            held = (
                f"{sequences:,} full-length sequences against {plain.max_concurrent_sequences:,} "
                f"at tensor parallel {size}"
            )
            best = TensorParallelCandidate(
                tensor_parallel=tp,
                memory=memory,
                max_concurrent_sequences=sequences,
                data_parallel=dp,
                data_parallel_because=f"{motive}; {dp} data-parallel ranks hold {held}",
            )
    if best is plain and runner_up is not None:
        dp, sequences = runner_up
        best = replace(
            plain,
            data_parallel_not_chosen=(
                f"{dp} data-parallel attention ranks would hold {sequences:,} full-length sequences, "
                "each rank keeping a whole copy of the weights outside the experts"
            ),
        )
    return best


def choose_tensor_parallel(
    arch: Architecture, accel: Accelerator, request: SizingRequest
) -> TensorParallelChoice:
    """The smallest tensor-parallel size that serves `arch` on `accel`.

    A size qualifies when each accelerator holds its weight shard, activations, runtime
    overhead and the KV cache of one full max_model_len sequence (vLLM refuses to start
    otherwise). Among those, the smallest that holds `request.concurrency` sequences is
    preferred; when none does, the smallest that holds one is chosen and meets_concurrency is
    False. For an MoE model whose attention is latent or whose block-FP8 experts need expert
    parallelism, each size is laid out as tensor parallelism alone or as data-parallel attention
    ranks, whichever holds more sequences (_with_data_parallel); a size is then the number of
    accelerators of an instance. `chosen` is None when no size within a node qualifies. A request that forces
    `tensor_parallel` has that size as its only candidate (or none, when it cannot work).
    """
    excluded: list[tuple[int, str]] = []
    candidates: list[TensorParallelCandidate] = []
    forced = request.tensor_parallel
    sizes = TENSOR_PARALLEL_SIZES if forced is None else (forced,)
    dp = request.data_parallel or 1
    for tp in sizes:
        problem = tensor_parallel_problem(arch, request.accelerators_per_node, tp)
        if dp > 1:
            # Experts are spread over every rank; the ranks of an instance share one node.
            nodes_worth = request.accelerators_per_node
            problem = (
                f"{tp} x {dp} data-parallel ranks exceed the {nodes_worth} accelerators of a node"
                if tp * dp > nodes_worth
                else tensor_parallel_problem(arch, nodes_worth, tp, expert_parallel=True)
            )
        because: str | None = None
        # Experts that cannot be split evenly can still be spread whole over the ranks.
        if (
            problem is not None
            and dp == 1
            and arch.moe is not None
            and tensor_parallel_problem(arch, request.accelerators_per_node, tp, expert_parallel=True) is None
        ):
            because, problem = problem, None
        if problem is not None:
            excluded.append((tp, problem))
            continue
        memory = memory_per_accelerator(arch, accel, request, tp)
        plain = TensorParallelCandidate(
            tensor_parallel=tp,
            memory=memory,
            max_concurrent_sequences=memory.full_length_sequences(request.max_model_len),
            expert_parallel_because=because,
        )
        candidates.append(_laid_out(arch, accel, request, plain))
    starting = [c for c in candidates if c.max_concurrent_sequences >= 1]
    preferred = [c for c in starting if c.max_concurrent_sequences >= request.concurrency]
    if preferred:
        chosen: TensorParallelCandidate | None = preferred[0]
    elif starting:
        chosen = starting[0]
    else:
        chosen = None
    return TensorParallelChoice(
        chosen=chosen,
        meets_concurrency=bool(preferred),
        candidates=tuple(candidates),
        excluded=tuple(excluded),
    )
