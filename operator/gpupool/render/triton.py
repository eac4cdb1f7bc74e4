"""Triton Inference Server with the vLLM backend: the model repository and the server arguments.

The repository holds one model, `<model>/config.pbtxt` and `<model>/1/model.json`, rendered into a
ConfigMap and mounted at MODEL_REPOSITORY_PATH. Layout and fields follow the vLLM backend's sample
repository (triton-inference-server/vllm_backend, samples/model_repository/vllm_model):

- `backend: "vllm"`.
- `max_batch_size: 0` and a decoupled transaction policy. The backend hands every request to
  vLLM's engine as soon as it arrives and vLLM batches continuously (in-flight batching with paged
  attention); the backend's auto-complete sets exactly these two values (src/model.py,
  auto_complete_config) and refuses to load without decoupled mode. Triton's
  `dynamic_batching { preferred_batch_size, max_queue_delay_microseconds }` therefore has no
  place here: with max_batch_size 0 Triton does not batch at all, and a preferred batch size
  above max_batch_size is rejected by Triton's configuration check.
- `instance_group [{ count: 1, kind: KIND_MODEL }]`: one engine owns every device the container
  sees. The backend rejects KIND_GPU for multi-device models ("KIND_GPU is currently for
  single-GPU models, please specify KIND_MODEL").
- `REPORT_CUSTOM_METRICS`: publishes vLLM's own `vllm:` metrics on Triton's metrics port (the
  engine must not set `disable_log_stats`), which gpupool's scaling reads.
- `model.json`: vLLM engine arguments, the same ones `vllm serve` gets from the plan.
"""

from __future__ import annotations

import json
import re
from typing import Final

from gpupool.render.vllm import GRPC_PORT, HTTP_PORT, METRICS_PORT, EngineOptionValue

MODEL_REPOSITORY_PATH: Final = "/models"
MODEL_VERSION: Final = "1"
CONFIG_KEY: Final = "config.pbtxt"
ENGINE_ARGS_KEY: Final = "model.json"


def triton_model_name(served_name: str) -> str:
    """The model's directory name in the repository, which is its name in Triton's API.

    A served name such as `org/model` cannot be a directory name, so any character outside
    letters, digits, `_`, `.` and `-` becomes `_`.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", served_name).strip(".")
    return name or "model"


def config_pbtxt(model_name: str) -> str:
    """The model configuration, in protobuf text format."""
    return "\n".join(
        [
            "# Rendered by gpupool; edit the ModelDeployment instead.",
            f'name: "{model_name}"',
            'backend: "vllm"',
            "",
            "# vLLM batches continuously by itself, so Triton's batching stays off: the vLLM",
            "# backend requires max_batch_size 0 and a decoupled policy. No dynamic_batching:",
            "# Triton rejects preferred batch sizes above max_batch_size.",
            "max_batch_size: 0",
            "model_transaction_policy {",
            "  decoupled: true",
            "}",
            "",
            "# One vLLM engine owns every accelerator of the container (tensor parallelism);",
            "# KIND_GPU is for single-GPU models only.",
            "instance_group [",
            "  {",
            "    count: 1",
            "    kind: KIND_MODEL",
            "  }",
            "]",
            "",
            "# Publish vLLM's own metrics (vllm:...) on Triton's metrics port.",
            "parameters: {",
            '  key: "REPORT_CUSTOM_METRICS"',
            '  value: { string_value: "true" }',
            "}",
            "",
        ]
    )


def model_json(options: dict[str, EngineOptionValue]) -> str:
    """The vLLM engine arguments as `model.json`, with statistics on for the metrics."""
    document: dict[str, EngineOptionValue] = {**options, "disable_log_stats": False}
    return json.dumps(document, indent=2) + "\n"


def repository_items(model_name: str) -> list[dict[str, str]]:
    """ConfigMap volume items placing the two files at their repository paths."""
    return [
        {"key": CONFIG_KEY, "path": f"{model_name}/{CONFIG_KEY}"},
        {"key": ENGINE_ARGS_KEY, "path": f"{model_name}/{MODEL_VERSION}/{ENGINE_ARGS_KEY}"},
    ]


def tritonserver_args(*, exit_timeout_seconds: int, extra_args: list[str]) -> list[str]:
    """Arguments of `tritonserver`, then the user's extraArgs (server flags for this engine).

    `--exit-timeout-secs`: on SIGTERM Triton stops accepting requests and waits up to that long
    for in-flight inferences before it exits (default 30).
    """
    return [
        f"--model-repository={MODEL_REPOSITORY_PATH}",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        f"--exit-timeout-secs={exit_timeout_seconds}",
        *extra_args,
    ]
