"""Choosing the tensor-parallel size of an instance."""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing.memory import MemoryBreakdown, memory_per_accelerator
from gpupool.sizing.request import SizingRequest

# The sizes vLLM and vllm-ascend are run with inside one node; TP groups never straddle nodes.
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)


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
    max_concurrent_sequences: int
    # Why the experts are placed whole on ranks (vLLM's --enable-expert-parallel), or None.
    expert_parallel_because: str | None = None


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


def choose_tensor_parallel(
    arch: Architecture, accel: Accelerator, request: SizingRequest
) -> TensorParallelChoice:
    """The smallest tensor-parallel size that serves `arch` on `accel`.

    A size qualifies when each accelerator holds its weight shard, activations, runtime
    overhead and the KV cache of one full max_model_len sequence (vLLM refuses to start
    otherwise). Among those, the smallest that holds `request.concurrency` sequences is
    preferred; when none does, the smallest that holds one is chosen and meets_concurrency is
    False. `chosen` is None when no size within a node qualifies. A request that forces
    `tensor_parallel` has that size as its only candidate (or none, when it cannot work).
    """
    excluded: list[tuple[int, str]] = []
    candidates: list[TensorParallelCandidate] = []
    sizes = TENSOR_PARALLEL_SIZES if request.tensor_parallel is None else (request.tensor_parallel,)
    for tp in sizes:
        problem = tensor_parallel_problem(arch, request.accelerators_per_node, tp)
        because: str | None = None
        # Experts that cannot be split evenly can still be spread whole over the ranks.
        if (
            problem is not None
            and arch.moe is not None
            and tensor_parallel_problem(arch, request.accelerators_per_node, tp, expert_parallel=True) is None
        ):
            because, problem = problem, None
        if problem is not None:
            excluded.append((tp, problem))
            continue
        memory = memory_per_accelerator(arch, accel, request, tp)
        candidates.append(
            TensorParallelCandidate(
                tensor_parallel=tp,
                memory=memory,
                max_concurrent_sequences=memory.full_length_sequences(request.max_model_len),
                expert_parallel_because=because,
            )
        )
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
