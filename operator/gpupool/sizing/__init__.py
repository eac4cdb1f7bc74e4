"""The sizing engine: memory per accelerator, tensor parallelism, instances, nodes and cost.

Pure functions of pydantic models; no Kubernetes, no IO.
"""

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
    kv_cache_bytes_per_token,
    kv_dtype_bytes,
    memory_per_accelerator,
    weight_bytes,
)
from gpupool.sizing.parallelism import (
    TENSOR_PARALLEL_SIZES,
    TensorParallelCandidate,
    TensorParallelChoice,
    choose_tensor_parallel,
    tensor_parallel_problem,
    valid_tensor_parallel_sizes,
)
from gpupool.sizing.plan import Plan, QpsSource, compare_accelerators, plan_deployment
from gpupool.sizing.request import SizingRequest
from gpupool.sizing.throughput import estimate_qps_per_instance, estimate_tokens_per_second

__all__ = [
    "TENSOR_PARALLEL_SIZES",
    "MemoryBreakdown",
    "Plan",
    "QpsSource",
    "SizingRequest",
    "TensorParallelCandidate",
    "TensorParallelChoice",
    "bytes_per_param",
    "choose_tensor_parallel",
    "compare_accelerators",
    "cost_per_hour",
    "estimate_qps_per_instance",
    "estimate_tokens_per_second",
    "instances_per_node",
    "kv_cache_bytes_per_token",
    "kv_dtype_bytes",
    "load_time_seconds",
    "memory_per_accelerator",
    "nodes_needed",
    "plan_deployment",
    "plan_instances",
    "tensor_parallel_problem",
    "valid_tensor_parallel_sizes",
    "weight_bytes",
]
