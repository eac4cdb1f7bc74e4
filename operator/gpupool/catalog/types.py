"""The types of the model and accelerator catalogs.

These types are embedded in the CRD schema, so every field carries the description that
`kubectl explain` shows, and counts are integers (bytes, parameters, tokens).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from gpupool.api.base import ApiModel
from gpupool.api.schema import cel, with_rules

# Lower-case DNS-label-like names, so a catalog name can appear in a resource name or a label.
CATALOG_NAME_PATTERN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"

# Bounds on a model's shapes, far above any published model (the largest have about 2e12
# parameters, 160 layers, 10M-token contexts), so that no figure derived from them overflows.
MAX_PARAMS = 100_000_000_000_000
MAX_LAYERS = 4096
MAX_WIDTH = 1_048_576
MAX_HEADS = 4096
MAX_HEAD_DIM = 16_384
MAX_EXPERTS = 65_536
MAX_CONTEXT = 1 << 26


class Vendor(StrEnum):
    """Who makes the accelerator, which decides the device plugin and the engine image."""

    NVIDIA = "nvidia"
    ASCEND = "ascend"


class Precision(StrEnum):
    """The number format of the served weights."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    # A 4-bit float in 16- or 32-element blocks with a shared scale: NVFP4 or MXFP4.
    FP4 = "fp4"


class KVCacheDtype(StrEnum):
    """The number format of the KV cache; `auto` follows vLLM: the model's 16-bit data type."""

    AUTO = "auto"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"


class QuantizationMethod(StrEnum):
    """How a pre-quantised checkpoint stores its weights (its config.json quantization_config)."""

    FP8 = "fp8"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"
    AWQ = "awq"
    GPTQ = "gptq"
    W8A8 = "w8a8"
    W4A8 = "w4a8"


class Quantization(ApiModel):
    """The weight format of a pre-quantised checkpoint, which sizes its weights."""

    method: QuantizationMethod = Field(
        description="Weight format: fp8, mxfp4, nvfp4, awq, gptq, w8a8 or w4a8."
    )
    weight_bits: int = Field(description="Bits of one stored weight.", ge=1, le=16)
    group_size: int | None = Field(
        default=None,
        description="Weights sharing one scale (AWQ/GPTQ groups, 32 for MXFP4, 16 for NVFP4).",
        ge=1,
        le=MAX_WIDTH,
    )
    block_size: int | None = Field(
        default=None,
        description=(
            "Side of the square blocks of block-wise FP8 (weight_block_size, 128); a tensor-parallel "
            "rank's share of an MLP must be a whole number of blocks."
        ),
        ge=1,
        le=MAX_HEAD_DIM,
    )
    experts_only: bool = Field(
        default=False,
        description="Only the MoE experts are quantised; attention and dense layers stay 16-bit (gpt-oss).",
    )


class Accelerator(ApiModel):
    """One kind of GPU or NPU, as the scheduler and the sizing engine see it."""

    name: str = Field(
        description="Catalog name of the accelerator, e.g. H100-80GB.",
        min_length=1,
        max_length=63,
    )
    vendor: Vendor = Field(description="Maker of the accelerator: nvidia or ascend.")
    memory_bytes: int = Field(
        description=(
            "Device memory in bytes as the driver reports it to software (nvidia-smi "
            "memory.total, npu-smi HBM capacity); vLLM's gpuMemoryUtilization is a "
            "fraction of this."
        ),
        gt=0,
    )
    memory_bandwidth_bytes_per_second: int | None = Field(
        default=None,
        description=(
            "Peak device memory bandwidth in bytes per second from the vendor datasheet; "
            "unset when no vendor figure is published, in which case QPS per instance "
            "must be measured."
        ),
        gt=0,
    )
    resource_name: str = Field(
        description="Extended resource the device plugin advertises, e.g. nvidia.com/gpu.",
        min_length=1,
    )
    product_label_key: str = Field(
        description=(
            "Node label whose value names the device model: nvidia.com/gpu.product (GPU "
            "feature discovery) or node.kubernetes.io/npu.chip.name (Ascend device plugin)."
        ),
        min_length=1,
    )
    product_label: str = Field(
        description="Value of the product label on nodes that carry this accelerator.",
        min_length=1,
    )
    product_label_aliases: tuple[str, ...] = Field(
        default=(),
        description=(
            "Other values of the product label that denote the same accelerator, e.g. 910B1 "
            "and 910B2 beside 910B3."
        ),
    )
    supported_precisions: tuple[Precision, ...] = Field(
        description="Weight precisions the hardware and its vLLM backend can serve.",
        min_length=1,
    )
    scale_up_domain: int | None = Field(
        default=None,
        description=(
            "Accelerators joined by one NVLink or HCCS domain when it differs from a node of 8, "
            "e.g. 72 for GB200 NVL72 or 16 dies for an Atlas 800 A3."
        ),
        ge=1,
    )
    description: str = Field(description="One line a person reads when choosing hardware.")


class MoE(ApiModel):
    """Mixture-of-experts layout: every expert is loaded, a few are used per token."""

    # The same checks as the validator below, so `kubectl apply` rejects the object up front.
    model_config = with_rules(
        cel(
            "self.expertsPerToken <= self.experts",
            "moe.expertsPerToken cannot exceed moe.experts",
            field_path=".expertsPerToken",
        ),
    )

    experts: int = Field(description="Routed experts per MoE layer.", ge=1, le=MAX_EXPERTS)
    experts_per_token: int = Field(description="Routed experts activated per token.", ge=1, le=MAX_EXPERTS)
    active_params: int = Field(description="Parameters used for one token.", ge=1, le=MAX_PARAMS)
    expert_intermediate_size: int | None = Field(
        default=None,
        description=(
            "Width of one expert's MLP (moe_intermediate_size); unset means the model's intermediateSize."
        ),
        ge=1,
        le=MAX_WIDTH,
    )
    shared_experts: int = Field(
        default=0, description="Experts every token uses besides the routed ones.", ge=0, le=MAX_EXPERTS
    )

    @model_validator(mode="after")
    def _check_routing(self) -> Self:
        if self.experts_per_token > self.experts:
            raise ValueError(
                f"experts_per_token ({self.experts_per_token}) cannot exceed experts ({self.experts})"
            )
        return self


class MLA(ApiModel):
    """Multi-head latent attention (DeepSeek-V2/V3): one compressed latent per token and layer."""

    kv_lora_rank: int = Field(
        description="Width of the compressed KV latent.", ge=1, le=MAX_HEAD_DIM * MAX_HEADS
    )
    qk_rope_head_dim: int = Field(
        description="Width of the decoupled rotary key stored beside the latent.", ge=0, le=MAX_HEAD_DIM
    )


class Architecture(ApiModel):
    """The shapes of a decoder-only transformer that decide its memory footprint."""

    # The same checks as the validator below, so `kubectl apply` rejects the object up front.
    model_config = with_rules(
        cel(
            "self.kvHeads <= self.attentionHeads && self.attentionHeads % self.kvHeads == 0",
            "architecture.kvHeads must divide architecture.attentionHeads (grouped-query attention)",
            field_path=".kvHeads",
        ),
        cel(
            "!has(self.moe) || self.moe.activeParams <= self.params",
            "architecture.moe.activeParams cannot exceed architecture.params",
            field_path=".moe.activeParams",
        ),
        cel(
            "self.slidingWindowLayers <= self.layers",
            "architecture.slidingWindowLayers cannot exceed architecture.layers",
            field_path=".slidingWindowLayers",
        ),
    )

    params: int = Field(description="Total parameter count (all experts for MoE).", ge=1, le=MAX_PARAMS)
    layers: int = Field(
        description=(
            "Decoder layers that keep a KV cache (num_hidden_layers, less linear-attention and "
            "attention-free layers of hybrid and NAS models)."
        ),
        ge=1,
        le=MAX_LAYERS,
    )
    hidden_size: int = Field(description="Model width (hidden_size).", ge=1, le=MAX_WIDTH)
    attention_heads: int = Field(description="Query heads (num_attention_heads).", ge=1, le=MAX_HEADS)
    kv_heads: int = Field(
        description="Key/value heads (num_key_value_heads); fewer than query heads under GQA.",
        ge=1,
        le=MAX_HEADS,
    )
    head_dim: int = Field(description="Width of one attention head.", ge=1, le=MAX_HEAD_DIM)
    max_position_embeddings: int = Field(
        description="Longest context the model was configured for, in tokens.", ge=1, le=MAX_CONTEXT
    )
    vocab_size: int | None = Field(default=None, description="Vocabulary size.", ge=1, le=MAX_WIDTH * 100)
    intermediate_size: int | None = Field(
        default=None,
        description=(
            "Width of the dense MLP (intermediate_size), which sizes the activations of "
            "vLLM's profiling pass; unset means 4 x hiddenSize."
        ),
        ge=1,
        le=MAX_WIDTH,
    )
    sliding_window: int | None = Field(
        default=None,
        description="Tokens a sliding-window attention layer attends to and caches.",
        ge=1,
        le=MAX_CONTEXT,
    )
    sliding_window_layers: int = Field(
        default=0,
        description="How many of the layers use the sliding window (the rest attend fully).",
        ge=0,
        le=MAX_LAYERS,
    )
    quantization: Quantization | None = Field(
        default=None,
        description="Weight format of a pre-quantised checkpoint; unset means precision sizes the weights.",
    )
    moe: MoE | None = Field(default=None, description="Expert layout, for MoE models.")
    mla: MLA | None = Field(default=None, description="Latent attention layout, for MLA models.")

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.kv_heads > self.attention_heads:
            raise ValueError(
                f"kv_heads ({self.kv_heads}) cannot exceed attention_heads ({self.attention_heads})"
            )
        if self.attention_heads % self.kv_heads != 0:
            raise ValueError(
                f"attention_heads ({self.attention_heads}) must be a multiple of kv_heads "
                f"({self.kv_heads}): each KV head serves a whole group of query heads"
            )
        if self.sliding_window_layers > self.layers:
            raise ValueError(
                f"sliding_window_layers ({self.sliding_window_layers}) cannot exceed layers ({self.layers})"
            )
        if self.moe is not None and self.moe.active_params > self.params:
            raise ValueError(
                f"moe.active_params ({self.moe.active_params}) cannot exceed params ({self.params})"
            )
        return self


class CatalogModel(ApiModel):
    """A model the catalog knows by name, with the shapes taken from its config.json."""

    name: str = Field(
        description="Catalog name, lower case, e.g. llama-3.1-8b.",
        pattern=CATALOG_NAME_PATTERN,
        max_length=63,
    )
    hf_id: str = Field(
        description="Hugging Face repository id, e.g. meta-llama/Llama-3.1-8B-Instruct.",
        min_length=1,
    )
    architecture: Architecture = Field(description="Shapes that decide the memory footprint.")
    description: str = Field(description="One line a person reads when choosing a model.")
