"""gpupool: a Kubernetes operator that turns GPUs and Ascend NPUs into managed inference pools."""

__version__ = "0.1.0"
