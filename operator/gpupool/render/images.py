"""Default engine images per engine and vendor, pinned, and the combinations gpupool can serve.

Every default is a fixed release tag, never `latest`, so that a rendered Deployment means the same
thing tomorrow; `spec.engine.image` overrides it. The vLLM versions on NVIDIA and on Ascend are
kept equal so that one set of engine flags means the same thing on both.

Sources:
- vLLM on NVIDIA: the official OpenAI-compatible server image, Docker Hub `vllm/vllm-openai`
  (https://docs.vllm.ai/en/latest/deployment/docker.html). v0.23.0 is the vLLM release the
  latest final vllm-ascend release is matched with (below), and is later than v0.18.0, the first
  release with `--shutdown-timeout` (vllm-project/vllm#34730), which the drain relies on.
- vLLM on Ascend: the vllm-ascend plugin's image, `quay.io/ascend/vllm-ascend:<tag>`
  (https://docs.vllm.ai/projects/ascend/en/latest/getting_started/quick_start.html). Tags are
  `v<version>` for Atlas A2 (Ascend 910B, the accelerators of the catalog), with `-a3`, `-310p`,
  `-950dt` and `-openeuler` variants for other hardware and base systems. v0.23.0 is matched
  with vLLM v0.23.0 (vllm-project/vllm-ascend#12916).
- Triton on NVIDIA: NGC's `nvcr.io/nvidia/tritonserver:<yy.mm>-vllm-python-py3`, the Triton
  release with the vLLM backend preinstalled
  (https://github.com/triton-inference-server/vllm_backend#option-1-use-the-pre-built-docker-container);
  26.10 is a release whose notes NVIDIA has published
  (https://docs.nvidia.com/deeplearning/triton-inference-server/release-notes/rel-26-10.html).
- Triton on Ascend: unsupported. Triton Inference Server's backends target NVIDIA GPUs and x86/ARM
  CPUs (triton-inference-server/backend, docs/backend_platform_support_matrix.md); there is no
  Ascend build of the server nor of its vLLM backend. ("Triton Ascend" in the vllm-ascend stack
  is the Triton kernel language compiler, a different project.) Serve vLLM directly on Ascend.
"""

from __future__ import annotations

from typing import Final

from gpupool.api.v1alpha1 import EngineType
from gpupool.catalog.types import Vendor

VLLM_VERSION: Final = "v0.23.0"
VLLM_ASCEND_VERSION: Final = "v0.23.0"
TRITON_VERSION: Final = "26.10"

VLLM_NVIDIA_IMAGE: Final = f"docker.io/vllm/vllm-openai:{VLLM_VERSION}"
VLLM_ASCEND_IMAGE: Final = f"quay.io/ascend/vllm-ascend:{VLLM_ASCEND_VERSION}"
TRITON_NVIDIA_IMAGE: Final = f"nvcr.io/nvidia/tritonserver:{TRITON_VERSION}-vllm-python-py3"

DEFAULT_IMAGES: Final[dict[tuple[EngineType, Vendor], str]] = {
    (EngineType.VLLM, Vendor.NVIDIA): VLLM_NVIDIA_IMAGE,
    (EngineType.VLLM, Vendor.ASCEND): VLLM_ASCEND_IMAGE,
    (EngineType.TRITON, Vendor.NVIDIA): TRITON_NVIDIA_IMAGE,
}

_UNSUPPORTED_REASONS: Final[dict[tuple[EngineType, Vendor], str]] = {
    (EngineType.TRITON, Vendor.ASCEND): (
        "Triton Inference Server has no Ascend NPU build: its backends, the vLLM backend "
        "included, run on NVIDIA GPUs and CPUs only. Use engine.type: vllm, which runs on "
        "Ascend through the vllm-ascend plugin image."
    ),
}


class UnsupportedEngineError(ValueError):
    """The engine cannot run on the pool's accelerators, or not with the requested settings."""


def check_supported(engine: EngineType, vendor: Vendor) -> None:
    """Raise UnsupportedEngineError when `engine` has no build for `vendor`'s accelerators."""
    if (engine, vendor) in DEFAULT_IMAGES:
        return
    reason = _UNSUPPORTED_REASONS.get(
        (engine, vendor), f"no known {engine.value} image for {vendor.value} accelerators."
    )
    raise UnsupportedEngineError(
        f"engine {engine.value!r} is not supported on {vendor.value} pools: {reason}"
    )


def default_image(engine: EngineType, vendor: Vendor) -> str:
    """The pinned default image of `engine` on `vendor`'s accelerators."""
    check_supported(engine, vendor)
    return DEFAULT_IMAGES[(engine, vendor)]
