"""Instances larger than a node for MoE models: data-parallel attention x expert parallelism
across nodes, the other way (beside gpupool.sizing.pipeline) to run one instance on a group.

vLLM's data-parallel deployment runs one engine per data-parallel rank, each a tensor-parallel
group with its own scheduler and KV cache, and with `--enable-expert-parallel` spreads the routed
experts over all tp x dp ranks of the instance (docs/serving/data_parallel_deployment.md of
vllm-project/vllm: "When TP is used in conjunction with DP, expert layers form a group of size
DP x TP"). Over several nodes each node runs `--data-parallel-size-local` ranks: the leader the
API server and the first ranks, every other node `--headless` from its
`--data-parallel-start-rank`, all meeting at `--data-parallel-address`/`--data-parallel-rpc-port`.
That is the layout vLLM's recipes and vllm-ascend's multi-node tutorial use for DeepSeek-V3/R1
(two Atlas 800 A2 nodes of 8 x 64 GB: data parallel 4 x tensor parallel 4 with expert
parallelism, https://docs.vllm.ai/projects/ascend/en/v0.9.1/tutorials/multi_node.html).

Memory per accelerator (gpupool.sizing.memory.weight_shard_bytes): the routed experts over all
tp x dp ranks, the rest (attention, dense layers, shared experts, embeddings) whole in every
data-parallel rank, split over its tp ranks; each rank profiles its own batch and holds the KV
cache of its own sequences.

Throughput. Each rank decodes its own batch from its own shard (the decode roofline of
gpupool.sizing.throughput), but every MoE layer sends each token's hidden state to the ranks of
its routed experts and back (dispatch and combine). Within a node that rides NVLink/HCCS; what
leaves the node crosses the inter-node link. An all-to-all that sends a token once to each
remote node holding one of its experts (DeepEP's internode kernels forward within the node over
NVLink, https://github.com/deepseek-ai/DeepEP) sends, with routing spread evenly over the nodes,

    remote_nodes = (nodes - 1) x (1 - ((nodes - 1) / nodes) ** experts_per_token)

copies of the token's hidden_size 16-bit values per direction per layer; every decoder layer is
counted as an MoE layer (DeepSeek-V3's first three are dense: a little conservative). A node's
link carries its own ranks' tokens, and the estimate adds that transfer to each decode step:

    tokens/second ~= dp x rank_batch / (rank_step + node_tokens x bytes_per_token / link)
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.catalog.types import Accelerator, Architecture
from gpupool.sizing.memory import MemoryBreakdown, memory_per_accelerator
from gpupool.sizing.parallelism import TENSOR_PARALLEL_SIZES, tensor_parallel_problem
from gpupool.sizing.pipeline import MAX_PIPELINE_PARALLEL
from gpupool.sizing.request import SizingRequest
from gpupool.sizing.throughput import decode_batch, decode_step

# The most nodes one data-parallel x expert-parallel instance is planned over, as for pipelines.
MAX_EXPERT_GROUP_NODES = MAX_PIPELINE_PARALLEL
# The hidden state a token carries to its experts and back: 16-bit values (bf16 dispatch).
ALL_TO_ALL_DTYPE_BYTES = 2
# Dispatch to the experts and combine of their outputs: two crossings per MoE layer.
ALL_TO_ALL_CROSSINGS = 2


def expert_parallel_problem(arch: Architecture, ranks: int) -> str | None:
    """Why `arch`'s routed experts cannot be spread evenly over `ranks` ranks, or None.

    vLLM places global_num_experts // ep_size experts on each rank and the remainder on the
    first ranks (determine_expert_map in vllm/model_executor/layers/fused_moe/layer.py), so an
    uneven split makes the fullest rank set every layer's pace; gpupool plans even splits only.
    """
    moe = arch.moe
    if moe is None:
        return "the model has no experts to spread over ranks"
    if ranks > moe.experts:
        return (
            f"{moe.experts} experts cannot be spread over {ranks} expert-parallel ranks: fewer experts "
            "than ranks"
        )
    if moe.experts % ranks != 0:
        return (
            f"{moe.experts} experts do not divide evenly over {ranks} expert-parallel ranks "
            f"({moe.experts / ranks:g} per rank)"
        )
    return None


def remote_nodes_per_token(arch: Architecture, nodes: int) -> float:
    """Other nodes one token's routed experts sit on, on average (see the module docstring)."""
    if arch.moe is None or nodes < 2:
        return 0.0
    others = nodes - 1
    return others * (1 - (others / nodes) ** arch.moe.experts_per_token)


def all_to_all_bytes_per_token(arch: Architecture, nodes: int) -> float:
    """Bytes one token sends over its node's link per decode step (every layer's dispatch and
    combine to its experts' other nodes)."""
    per_crossing = arch.hidden_size * ALL_TO_ALL_DTYPE_BYTES * remote_nodes_per_token(arch, nodes)
    return arch.layers * ALL_TO_ALL_CROSSINGS * per_crossing


@dataclass(frozen=True)
class ExpertGroupCandidate:
    """One group of nodes running data-parallel attention ranks with the experts over all."""

    nodes: int
    tensor_parallel: int
    data_parallel: int
    memory: MemoryBreakdown
    # Full-length sequences the whole instance holds: every data-parallel rank's together.
    max_concurrent_sequences: int

    @property
    def accelerators(self) -> int:
        return self.tensor_parallel * self.data_parallel

    @property
    def data_parallel_local(self) -> int:
        """Data-parallel ranks on each node (vLLM's --data-parallel-size-local)."""
        return self.data_parallel // self.nodes

    @property
    def rank_sequences(self) -> int:
        return self.max_concurrent_sequences // self.data_parallel


@dataclass(frozen=True)
class ExpertGroupChoice:
    """The chosen group, if any, every group tried, and the layouts ruled out and why."""

    chosen: ExpertGroupCandidate | None
    meets_concurrency: bool
    candidates: tuple[ExpertGroupCandidate, ...]
    excluded: tuple[tuple[int, str], ...]


def _layout_problem(arch: Architecture, request: SizingRequest, nodes: int, tp: int) -> str | None:
    per_node = request.accelerators_per_node
    if per_node % tp != 0:
        return f"tensor parallel {tp} does not divide the {per_node} accelerators of a node"
    problem = tensor_parallel_problem(arch, per_node, tp, expert_parallel=True)
    if problem is not None:
        return f"tensor parallel {tp}: {problem}"
    ranks = nodes * per_node
    forced = request.data_parallel
    if forced is not None and forced * tp != ranks:
        return (
            f"{forced} data-parallel ranks of tensor parallel {tp} are not the {ranks} accelerators "
            f"of {nodes} nodes"
        )
    return expert_parallel_problem(arch, ranks)


def _best_at(
    arch: Architecture,
    accel: Accelerator,
    request: SizingRequest,
    nodes: int,
    excluded: list[tuple[int, str]],
) -> ExpertGroupCandidate | None:
    """The layout of `nodes` nodes that holds the most full-length sequences (ties: narrower tp)."""
    best: ExpertGroupCandidate | None = None
    problems: list[str] = []
    for tp in TENSOR_PARALLEL_SIZES:
        problem = _layout_problem(arch, request, nodes, tp)
        if problem is not None:
            problems.append(problem)
            continue
        dp = nodes * request.accelerators_per_node // tp
        memory = memory_per_accelerator(arch, accel, request, tp, dp)
        sequences = dp * memory.full_length_sequences(request.max_model_len)
        if best is None or sequences > best.max_concurrent_sequences:
            best = ExpertGroupCandidate(nodes, tp, dp, memory, sequences)
    if best is None and problems:
        excluded.append((nodes, problems[-1] if len(set(problems)) > 1 else problems[0]))
    return best


def choose_expert_groups(arch: Architecture, accel: Accelerator, request: SizingRequest) -> ExpertGroupChoice:
    """The fewest nodes (2 to MAX_EXPERT_GROUP_NODES) whose data-parallel x expert-parallel
    layout serves `arch`: the fewest that hold `request.concurrency` sequences, else the fewest
    that start (one full max_model_len sequence per data-parallel rank). Not for dense models,
    nor for a request that forces tensor parallelism alone (data_parallel 1) or a tensor-parallel
    size (which, as for pipelines, keeps the plan on one node)."""
    if arch.moe is None or request.data_parallel == 1 or request.tensor_parallel is not None:
        return ExpertGroupChoice(None, False, (), ())
    candidates: list[ExpertGroupCandidate] = []
    excluded: list[tuple[int, str]] = []
    for nodes in range(2, MAX_EXPERT_GROUP_NODES + 1):
        best = _best_at(arch, accel, request, nodes, excluded)
        if best is not None:
            candidates.append(best)
    # Every rank needs one full-length sequence, or vLLM refuses to start that engine.
    starting = [c for c in candidates if c.rank_sequences >= 1]
    preferred = [c for c in starting if c.max_concurrent_sequences >= request.concurrency]
    chosen = preferred[0] if preferred else (starting[0] if starting else None)
    return ExpertGroupChoice(chosen, bool(preferred), tuple(candidates), tuple(excluded))


@dataclass(frozen=True)
class ExpertGroupThroughput:
    """The decode roofline of a data-parallel x expert-parallel group and its all-to-all."""

    rank_batch: int
    rank_step_seconds: float
    link_seconds: float
    data_parallel: int
    bytes_per_token: float

    @property
    def tokens_per_second(self) -> float:
        cycle = self.rank_step_seconds + self.link_seconds
        return self.data_parallel * self.rank_batch / cycle if cycle > 0 else 0.0


def expert_group_throughput(
    arch: Architecture, accel: Accelerator, request: SizingRequest, candidate: ExpertGroupCandidate
) -> ExpertGroupThroughput:
    """The decode roofline of `candidate` (see the module docstring).

    Raises ValueError when the accelerator has no sourced memory bandwidth.
    """
    batch = decode_batch(candidate.rank_sequences)
    step = decode_step(
        arch,
        accel,
        candidate.memory,
        request.precision,
        candidate.tensor_parallel,
        request.max_model_len / 2,
        batch,
    )
    per_token = all_to_all_bytes_per_token(arch, candidate.nodes)
    node_tokens = candidate.data_parallel_local * batch
    link = node_tokens * per_token / request.inter_node_bytes_per_second
    return ExpertGroupThroughput(
        rank_batch=batch,
        rank_step_seconds=step.seconds,
        link_seconds=link,
        data_parallel=candidate.data_parallel,
        bytes_per_token=per_token,
    )
