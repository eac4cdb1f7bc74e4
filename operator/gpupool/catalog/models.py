"""The model catalog, and reading a Hugging Face config.json into an Architecture.

Every shape below is copied from the model's config.json on Hugging Face (URL beside it).
Parameter counts are exact counts from those shapes with the formula of `estimate_params`
(embeddings, attention, MLP or experts, norms, biases); each agrees with the rounded figure the
model card or its safetensors metadata shows, quoted beside it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gpupool.catalog.formats import quantization_from_config
from gpupool.catalog.types import MLA, Architecture, CatalogModel, MoE, Quantization, QuantizationMethod


class UnknownModelError(ValueError):
    """Raised when a model name is not in the catalog."""


_CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        name="llama-3.1-8b",
        hf_id="meta-llama/Llama-3.1-8B-Instruct",
        # https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json
        architecture=Architecture(
            params=8_030_261_248,  # model card / safetensors: 8.03B
            layers=32,
            hidden_size=4096,
            attention_heads=32,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=131_072,
            vocab_size=128_256,
            intermediate_size=14_336,
        ),
        description="Meta Llama 3.1 8B Instruct: dense, GQA (8 KV heads), 128K context.",
    ),
    CatalogModel(
        name="llama-3.1-70b",
        hf_id="meta-llama/Llama-3.1-70B-Instruct",
        # https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct/blob/main/config.json
        architecture=Architecture(
            params=70_553_706_496,  # model card / safetensors: 70.6B
            layers=80,
            hidden_size=8192,
            attention_heads=64,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=131_072,
            vocab_size=128_256,
            intermediate_size=28_672,
        ),
        description="Meta Llama 3.1 70B Instruct: dense, GQA (8 KV heads), 128K context.",
    ),
    CatalogModel(
        name="llama-3.1-405b",
        hf_id="meta-llama/Llama-3.1-405B-Instruct",
        # https://huggingface.co/meta-llama/Llama-3.1-405B-Instruct/blob/main/config.json
        # The first upload said num_key_value_heads 16 (the MP16 layout); Meta's repos were
        # changed to the model's real 8 KV heads:
        # https://huggingface.co/meta-llama/Llama-3.1-405B-Instruct-FP8/discussions/14
        architecture=Architecture(
            params=405_853_388_800,  # model card / safetensors: 406B
            layers=126,
            hidden_size=16_384,
            attention_heads=128,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=131_072,
            vocab_size=128_256,
            intermediate_size=53_248,
        ),
        description="Meta Llama 3.1 405B Instruct: dense, GQA (8 KV heads), 128K context.",
    ),
    CatalogModel(
        name="qwen2.5-7b",
        hf_id="Qwen/Qwen2.5-7B-Instruct",
        # https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json
        # (32K configured; the card's YaRN rope scaling extends it to 128K)
        architecture=Architecture(
            params=7_615_616_512,  # model card: 7.61B
            layers=28,
            hidden_size=3584,
            attention_heads=28,
            kv_heads=4,
            head_dim=128,
            max_position_embeddings=32_768,
            vocab_size=152_064,
            intermediate_size=18_944,
        ),
        description="Qwen2.5 7B Instruct: dense, GQA (4 KV heads), 28 query heads.",
    ),
    CatalogModel(
        name="qwen2.5-32b",
        hf_id="Qwen/Qwen2.5-32B-Instruct",
        # https://huggingface.co/Qwen/Qwen2.5-32B-Instruct/blob/main/config.json
        architecture=Architecture(
            params=32_763_876_352,  # safetensors: 32.8B (the card text says 32.5B)
            layers=64,
            hidden_size=5120,
            attention_heads=40,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=32_768,
            vocab_size=152_064,
            intermediate_size=27_648,
        ),
        description="Qwen2.5 32B Instruct: dense, GQA (8 KV heads), 40 query heads.",
    ),
    CatalogModel(
        name="qwen2.5-72b",
        hf_id="Qwen/Qwen2.5-72B-Instruct",
        # https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/config.json
        architecture=Architecture(
            params=72_706_203_648,  # model card: 72.7B
            layers=80,
            hidden_size=8192,
            attention_heads=64,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=32_768,
            vocab_size=152_064,
            intermediate_size=29_568,
        ),
        description="Qwen2.5 72B Instruct: dense, GQA (8 KV heads), 64 query heads.",
    ),
    CatalogModel(
        name="deepseek-r1-distill-qwen-32b",
        hf_id="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        # https://huggingface.co/deepseek-ai/DeepSeek-R1-Distill-Qwen-32B/blob/main/config.json
        # (the Qwen2.5-32B shapes with a 128K context)
        architecture=Architecture(
            params=32_763_876_352,  # safetensors: 32.8B
            layers=64,
            hidden_size=5120,
            attention_heads=40,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=131_072,
            vocab_size=152_064,
            intermediate_size=27_648,
        ),
        description="DeepSeek-R1 distilled into Qwen2.5-32B: dense, reasoning, long outputs.",
    ),
    CatalogModel(
        name="glm-4-9b",
        hf_id="THUDM/glm-4-9b-chat",
        # https://huggingface.co/THUDM/glm-4-9b-chat/blob/main/config.json, in ChatGLM key
        # names: num_layers, multi_query_group_num, kv_channels, seq_length, padded_vocab_size
        architecture=Architecture(
            params=9_399_951_360,  # safetensors: 9.4B
            layers=40,
            hidden_size=4096,
            attention_heads=32,
            kv_heads=2,
            head_dim=128,
            max_position_embeddings=131_072,
            vocab_size=151_552,
            intermediate_size=13_696,
        ),
        description="GLM-4 9B Chat: dense, 2 KV groups (multi-query), 128K context.",
    ),
    CatalogModel(
        name="mixtral-8x7b",
        hf_id="mistralai/Mixtral-8x7B-Instruct-v0.1",
        # https://huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1/blob/main/config.json
        architecture=Architecture(
            params=46_702_792_704,  # safetensors: 46.7B
            layers=32,
            hidden_size=4096,
            attention_heads=32,
            kv_heads=8,
            head_dim=128,
            max_position_embeddings=32_768,
            vocab_size=32_000,
            intermediate_size=14_336,
            # 12.9B active per token (Mistral's release notes); exact count from the shapes.
            moe=MoE(experts=8, experts_per_token=2, active_params=12_879_925_248),
        ),
        description="Mixtral 8x7B Instruct: sparse MoE, 8 experts, 2 per token, GQA.",
    ),
    CatalogModel(
        name="deepseek-v3",
        hf_id="deepseek-ai/DeepSeek-V3",
        # https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json; the MLA and MoE
        # shapes are also in inference/configs/config_671B.json of
        # https://github.com/deepseek-ai/DeepSeek-V3
        # head_dim is the query/key width qk_nope_head_dim + qk_rope_head_dim = 128 + 64.
        architecture=Architecture(
            # README_WEIGHTS.md of the GitHub repo: 671B main-model parameters (the checkpoint's
            # 685B adds the multi-token-prediction module, which serves speculative decoding).
            params=671_026_404_352,
            layers=61,
            hidden_size=7168,
            attention_heads=128,
            kv_heads=128,
            head_dim=192,
            max_position_embeddings=163_840,
            vocab_size=129_280,
            intermediate_size=18_432,
            # README_WEIGHTS.md: 36.7B activated parameters per token (the shape formula,
            # which counts the shared expert and both embeddings, gives 37.6B).
            moe=MoE(
                experts=256,
                experts_per_token=8,
                active_params=36_700_000_000,
                expert_intermediate_size=2048,
                shared_experts=1,
            ),
            mla=MLA(kv_lora_rank=512, qk_rope_head_dim=64),
            # config.json quantization_config: fp8, weight_block_size [128, 128].
            quantization=Quantization(method=QuantizationMethod.FP8, weight_bits=8, block_size=128),
        ),
        description="DeepSeek-V3: MoE (256 experts, 8 per token) with latent attention, FP8.",
    ),
    CatalogModel(
        name="qwen3-235b-a22b",
        hf_id="Qwen/Qwen3-235B-A22B",
        # https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json (Qwen3-235B-A22B-FP8
        # has the same shapes with a block-wise FP8 quantization_config)
        architecture=Architecture(
            params=235_093_610_496,  # model card: 235B in total, 22B activated
            layers=94,
            hidden_size=4096,
            attention_heads=64,
            kv_heads=4,
            head_dim=128,
            max_position_embeddings=40_960,
            vocab_size=151_936,
            intermediate_size=12_288,
            moe=MoE(
                experts=128,
                experts_per_token=8,
                active_params=22_190_739_456,
                expert_intermediate_size=1536,
            ),
        ),
        description="Qwen3 235B-A22B: MoE (128 experts, 8 per token), GQA (4 KV heads), 40K context.",
    ),
)

# Every model by catalog name, in catalog order.
MODELS: Mapping[str, CatalogModel] = MappingProxyType({m.name: m for m in _CATALOG})


def model_names() -> list[str]:
    """Catalog names of every known model, in catalog order."""
    return list(MODELS)


def get_model(name: str) -> CatalogModel:
    """The catalog model called `name` (case-insensitive; the Hugging Face id also works).

    Raises UnknownModelError, whose message lists close matches and every known name.
    """
    key = name.strip().lower()
    if key in MODELS:
        return MODELS[key]
    for model in MODELS.values():
        if model.hf_id.lower() == key:
            return model
    close = difflib.get_close_matches(key, list(MODELS), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}.{hint} Known models: {', '.join(model_names())}. "
        "A Hugging Face config.json path also works."
    )


# --- Reading a Hugging Face config.json -------------------------------------------------------

# Key names per concept, in the order they are tried: Hugging Face's standard names first, then
# ChatGLM's (THUDM/glm-4-9b-chat) and GPT-2-style ones.
_LAYER_KEYS = ("num_hidden_layers", "num_layers", "n_layer")
_HIDDEN_KEYS = ("hidden_size", "d_model", "n_embd")
_HEAD_KEYS = ("num_attention_heads", "n_head")
_KV_HEAD_KEYS = ("num_key_value_heads", "multi_query_group_num", "n_head_kv")
_HEAD_DIM_KEYS = ("head_dim", "kv_channels")
_CONTEXT_KEYS = ("max_position_embeddings", "seq_length", "n_positions", "max_sequence_length")
_VOCAB_KEYS = ("vocab_size", "padded_vocab_size")
_INTERMEDIATE_KEYS = ("intermediate_size", "ffn_hidden_size")
_EXPERT_KEYS = ("num_local_experts", "n_routed_experts", "num_experts")

# Model types whose attention projections carry biases although config.json does not say so.
_QKV_BIAS_MODEL_TYPES = frozenset({"qwen2", "qwen2_moe"})


def _text_config(config: Mapping[str, object]) -> Mapping[str, object]:
    """Multimodal configs nest the language model's shapes under text_config."""
    nested = config.get("text_config")
    if isinstance(nested, Mapping):
        merged: dict[str, object] = {str(k): v for k, v in config.items()}
        merged.update({str(k): v for k, v in nested.items()})
        return merged
    return config


def _int(config: Mapping[str, object], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config.json field {key!r} must be an integer, got {value!r}")
        return value
    return None


def _require(config: Mapping[str, object], keys: tuple[str, ...], what: str) -> int:
    value = _int(config, keys)
    if value is None:
        raise ValueError(
            f"config.json has no {what} (looked for {', '.join(keys)}); "
            "is this a decoder-only language model config?"
        )
    return value


def _flag(config: Mapping[str, object], key: str) -> bool:
    return config.get(key) is True


# DeciLM / Nemotron NAS (nvidia/Llama-3_3-Nemotron-Super-49B-v1, modeling_decilm.py,
# _ffn_mult_to_intermediate_size): int(2 x ffn_mult x hidden / 3) rounded up to a multiple of 256.
_NAS_FFN_MULTIPLE = 256


def _nas_intermediate(ffn_mult: float, hidden: int) -> int:
    width = int(2 * ffn_mult * hidden / 3)
    return -(-width // _NAS_FFN_MULTIPLE) * _NAS_FFN_MULTIPLE


@dataclass(frozen=True)
class _NasLayer:
    """One layer of a Nemotron NAS config: its attention and its MLP, either of which may be
    missing (no_op or a null field) or a single hidden x hidden linear (replace_with_linear)."""

    heads_per_kv_head: int | None
    attention_linear: bool
    mlp_width: int | None
    mlp_linear: bool


def _nas_blocks(config: Mapping[str, object], hidden: int) -> list[_NasLayer] | None:
    """The layers of a Nemotron NAS `block_configs`, or None for a uniform model."""
    blocks = config.get("block_configs")
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not blocks:
        raise ValueError("config.json field 'block_configs' must be a non-empty list of per-layer blocks")
    layers: list[_NasLayer] = []
    for index, block in enumerate(blocks):
        where = f"block_configs[{index}]"
        if not isinstance(block, Mapping):
            raise ValueError(f"config.json field {where!r} must be an object")
        attention = block.get("attention") or {}
        ffn = block.get("ffn") or {}
        if not isinstance(attention, Mapping) or not isinstance(ffn, Mapping):
            raise ValueError(f"config.json field {where!r} needs attention and ffn objects")
        attention_linear = attention.get("replace_with_linear") is True
        group = attention.get("n_heads_in_group")
        if attention.get("no_op") is True or attention_linear:
            group = None
        if group is not None and (isinstance(group, bool) or not isinstance(group, int) or group < 1):
            raise ValueError(
                f"config.json field '{where}.attention.n_heads_in_group' must be a positive integer"
            )
        mlp_linear = ffn.get("replace_with_linear") is True
        mult = ffn.get("ffn_mult")
        if ffn.get("no_op") is True or mlp_linear:
            mult = None
        if mult is not None and (isinstance(mult, bool) or not isinstance(mult, int | float) or mult <= 0):
            raise ValueError(f"config.json field '{where}.ffn.ffn_mult' must be a positive number")
        width = None if mult is None else _nas_intermediate(float(mult), hidden)
        layers.append(_NasLayer(group, attention_linear, width, mlp_linear))
    return layers


def _nas_params(config: Mapping[str, object], layers: list[_NasLayer], hidden: int, heads: int) -> int:
    """Parameters of a NAS model: embeddings, then each layer's attention and MLP as it is."""
    head_dim = _int(config, _HEAD_DIM_KEYS) or hidden // heads
    vocab = _require(config, _VOCAB_KEYS, "vocabulary size")
    total = vocab * hidden * (1 if _flag(config, "tie_word_embeddings") else 2) + hidden
    for layer in layers:
        if layer.heads_per_kv_head is not None:
            kv_width = heads // layer.heads_per_kv_head * head_dim
            total += 2 * hidden * heads * head_dim + 2 * hidden * kv_width + hidden
        elif layer.attention_linear:
            total += hidden * hidden + hidden
        if layer.mlp_width is not None:
            total += 3 * hidden * layer.mlp_width + hidden
        elif layer.mlp_linear:
            total += hidden * hidden + hidden
    return total


def estimate_params(config: Mapping[str, object]) -> tuple[int, int]:
    """Total and per-token parameter counts from the shapes in a config.json.

    The formula, for a decoder with gated (SwiGLU) MLPs and RMSNorm:
      embeddings    vocab x hidden, twice unless tie_word_embeddings
      attention     q: hidden x heads x head_dim; k and v: hidden x kv_heads x head_dim each;
                    o: heads x head_dim x hidden; plus q/k/v biases for Qwen2 and ChatGLM
                    MLA (DeepSeek): hidden x q_lora_rank + q_lora_rank x heads x (nope + rope),
                    hidden x (kv_lora_rank + rope), kv_lora_rank x heads x (nope + v_head_dim),
                    heads x v_head_dim x hidden, plus the two latent norms
      MLP           3 x hidden x intermediate per dense layer
      MoE layer     (routed + shared experts) x 3 x hidden x expert_intermediate, plus a
                    hidden x experts router; the first first_k_dense_replace layers are dense
      norms         2 x hidden per layer, hidden for the final norm
    Per-token counts use experts_per_token routed experts (plus shared ones) instead of all.
    Checked against the model cards of the catalog models (tests/unit/catalog/test_models.py).
    """
    config = _text_config(config)
    model_type = str(config.get("model_type", ""))
    hidden = _require(config, _HIDDEN_KEYS, "hidden size")
    heads = _require(config, _HEAD_KEYS, "attention head count")
    blocks = _nas_blocks(config, hidden)
    if blocks is not None:
        total = _nas_params(config, blocks, hidden, heads)
        return total, total
    layers = _require(config, _LAYER_KEYS, "layer count")
    kv_heads = _kv_heads(config, heads)
    head_dim = _int(config, _HEAD_DIM_KEYS) or hidden // heads
    vocab = _require(config, _VOCAB_KEYS, "vocabulary size")
    intermediate = _int(config, _INTERMEDIATE_KEYS)

    embeddings = vocab * hidden * (1 if _flag(config, "tie_word_embeddings") else 2)
    norms_per_layer = 2 * hidden

    kv_lora_rank = _int(config, ("kv_lora_rank",))
    if kv_lora_rank is not None:
        rope = _int(config, ("qk_rope_head_dim",)) or 0
        nope = _int(config, ("qk_nope_head_dim",)) or 0
        v_dim = _int(config, ("v_head_dim",)) or nope
        q_lora = _int(config, ("q_lora_rank",))
        q_width = heads * (nope + rope)
        query = hidden * q_width if not q_lora else hidden * q_lora + q_lora + q_lora * q_width
        attention = (
            query
            + hidden * (kv_lora_rank + rope)
            + kv_lora_rank
            + kv_lora_rank * heads * (nope + v_dim)
            + heads * v_dim * hidden
        )
    else:
        q_width = heads * head_dim
        kv_width = kv_heads * head_dim
        attention = 2 * hidden * q_width + 2 * hidden * kv_width
        if (
            model_type in _QKV_BIAS_MODEL_TYPES
            or _flag(config, "add_qkv_bias")
            or _flag(config, "attention_bias")
        ):
            attention += q_width + 2 * kv_width

    experts = _int(config, _EXPERT_KEYS)
    if experts:
        expert_width = _int(config, ("moe_intermediate_size",)) or intermediate
        if expert_width is None:
            raise ValueError("config.json has an MoE layout but no expert intermediate size")
        per_token = _int(config, ("num_experts_per_tok", "num_experts_per_token"))
        if per_token is None:
            raise ValueError("config.json has experts but no num_experts_per_tok")
        shared = _int(config, ("n_shared_experts",)) or 0
        dense_layers = min(_int(config, ("first_k_dense_replace",)) or 0, layers)
        moe_layers = layers - dense_layers
        expert = 3 * hidden * expert_width
        router = hidden * experts
        dense_mlp = 3 * hidden * (intermediate or 0)
        all_mlp = dense_layers * dense_mlp + moe_layers * ((experts + shared) * expert + router)
        active_mlp = dense_layers * dense_mlp + moe_layers * ((per_token + shared) * expert + router)
    else:
        if intermediate is None:
            raise ValueError("config.json has no intermediate size (intermediate_size)")
        all_mlp = active_mlp = layers * 3 * hidden * intermediate

    shared_part = embeddings + layers * (attention + norms_per_layer) + hidden + vision_params(config)
    return shared_part + all_mlp, shared_part + active_mlp


def vision_params(config: Mapping[str, object]) -> int:
    """Parameters of a VL model's vision tower (`vision_config`), which vLLM loads on every rank's
    share like the language model: per block attention (4 x width^2) and MLP, then the projector.

    Qwen2-VL/Qwen2.5-VL towers (`depth`) use gated MLPs (3 matrices) and a merger of
    `spatial_merge_size`^2 patches into `out_hidden_size`; SigLIP/CLIP towers (Gemma 3, LLaVA) use
    two-matrix MLPs and a linear projector into the language model's width.
    """
    vision = config.get("vision_config")
    if not isinstance(vision, Mapping):
        return 0
    blocks = _int(vision, ("depth", "num_hidden_layers"))
    width = _int(vision, ("hidden_size", "embed_dim"))
    if blocks is None or width is None:
        return 0
    mlp = _int(vision, ("intermediate_size",)) or 4 * width
    if "depth" in vision:
        merged = width * (_int(vision, ("spatial_merge_size",)) or 1) ** 2
        out = _int(vision, ("out_hidden_size",)) or _int(config, _HIDDEN_KEYS) or width
        return blocks * (4 * width * width + 3 * width * mlp) + merged * merged + merged * out
    text_width = _int(config, _HIDDEN_KEYS) or width
    return blocks * (4 * width * width + 2 * width * mlp) + width * text_width


def _kv_heads(config: Mapping[str, object], heads: int) -> int:
    if config.get("multi_query_attention") is False:
        return heads
    return _int(config, _KV_HEAD_KEYS) or heads


def _sliding_layers(config: Mapping[str, object], layers: int) -> tuple[int | None, int]:
    """The sliding window and how many layers use it.

    `layer_types` (gpt-oss, Qwen3-Next, Gemma 3) names each layer; Gemma's
    `sliding_window_pattern` N makes every Nth layer full; Qwen2's `use_sliding_window: false`
    turns a configured window off; otherwise (Mistral) every layer slides.
    """
    window = _int(config, ("sliding_window",))
    if window is None or config.get("use_sliding_window") is False:
        return None, 0
    kinds = config.get("layer_types")
    if isinstance(kinds, list):
        return window, sum(1 for kind in kinds if kind == "sliding_attention")
    pattern = _int(config, ("sliding_window_pattern",))
    if pattern:
        return window, layers - layers // pattern
    return window, layers


# layer_types entries of layers that keep a per-token KV cache; hybrid models (Qwen3-Next's
# "linear_attention", Mamba layers) keep a fixed-size state instead.
_KV_LAYER_TYPES = frozenset({"full_attention", "sliding_attention", "attention"})


def _attention_layers(config: Mapping[str, object], layers: int) -> int:
    """Layers holding a per-token KV cache: all of them unless `layer_types` says otherwise."""
    kinds = config.get("layer_types")
    if not isinstance(kinds, list):
        return layers
    count = sum(1 for kind in kinds if kind in _KV_LAYER_TYPES)
    if count == 0:
        raise ValueError("config.json field 'layer_types' names no attention layer")
    return count


def architecture_from_hf_config(config: Mapping[str, object], params: int | None = None) -> Architecture:
    """An Architecture from a Hugging Face config.json (already parsed into a mapping).

    Reads the Llama, Qwen2/3, Mistral, Mixtral, DeepSeek-V2/V3, gpt-oss, Gemma, ChatGLM and
    Nemotron NAS (`block_configs`) key names, and a language model nested under `text_config`.
    config.json does not state the parameter count: pass `params` (from the model card or the
    safetensors index) when known, otherwise it is estimated from the shapes with
    `estimate_params`. A field gpupool cannot use raises ValueError with a one-line message
    that names it.
    """
    config = _text_config(config)
    hidden = _require(config, _HIDDEN_KEYS, "hidden size")
    heads = _require(config, _HEAD_KEYS, "attention head count")
    context = _require(config, _CONTEXT_KEYS, "context length")
    vocab = _int(config, _VOCAB_KEYS)
    intermediate = _int(config, _INTERMEDIATE_KEYS)
    blocks = _nas_blocks(config, hidden)
    if blocks is not None:
        groups = [layer.heads_per_kv_head for layer in blocks if layer.heads_per_kv_head is not None]
        widths = [layer.mlp_width for layer in blocks if layer.mlp_width is not None]
        if not groups:
            raise ValueError("config.json field 'block_configs' has no layer with attention")
        total, _ = estimate_params(config)
        return Architecture(
            quantization=quantization_from_config(config),
            params=params if params is not None else total,
            # Only layers with attention hold KV cache.
            layers=len(groups),
            hidden_size=hidden,
            attention_heads=heads,
            kv_heads=heads // min(groups),
            head_dim=_int(config, _HEAD_DIM_KEYS) or hidden // heads,
            max_position_embeddings=context,
            vocab_size=vocab,
            intermediate_size=max(widths) if widths else None,
        )
    layers = _require(config, _LAYER_KEYS, "layer count")
    kv_heads = _kv_heads(config, heads)

    kv_lora_rank = _int(config, ("kv_lora_rank",))
    mla: MLA | None = None
    if kv_lora_rank is not None:
        rope = _int(config, ("qk_rope_head_dim",)) or 0
        nope = _int(config, ("qk_nope_head_dim",)) or 0
        head_dim = _int(config, ("head_dim",)) or nope + rope
        mla = MLA(kv_lora_rank=kv_lora_rank, qk_rope_head_dim=rope)
    else:
        head_dim = _int(config, _HEAD_DIM_KEYS) or hidden // heads

    total, active = estimate_params(config)
    experts = _int(config, _EXPERT_KEYS)
    moe: MoE | None = None
    if experts:
        per_token = _int(config, ("num_experts_per_tok", "num_experts_per_token")) or 1
        expert_width = _int(config, ("moe_intermediate_size",))
        moe = MoE(
            experts=experts,
            experts_per_token=per_token,
            active_params=min(active, params) if params is not None else active,
            expert_intermediate_size=expert_width if expert_width != intermediate else None,
            shared_experts=_int(config, ("n_shared_experts",)) or 0,
        )
    window, sliding = _sliding_layers(config, layers)
    return Architecture(
        quantization=quantization_from_config(config),
        params=params if params is not None else total,
        layers=_attention_layers(config, layers),
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=context,
        vocab_size=vocab,
        intermediate_size=intermediate,
        sliding_window=window if sliding else None,
        sliding_window_layers=sliding,
        moe=moe,
        mla=mla,
    )
