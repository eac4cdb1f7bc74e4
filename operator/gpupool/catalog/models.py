"""The model catalog, and reading a Hugging Face config.json into an Architecture.

Every shape below is copied from the model's config.json on Hugging Face (URL beside it).
Parameter counts are exact counts from those shapes with the formula of `estimate_params`
(embeddings, attention, MLP or experts, norms, biases); each agrees with the rounded figure the
model card or its safetensors metadata shows, quoted beside it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType

from gpupool.catalog.types import MLA, Architecture, CatalogModel, MoE


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
            # README_WEIGHTS.md: 36.7B activated parameters per token (the shape formula,
            # which counts the shared expert and both embeddings, gives 37.6B).
            moe=MoE(experts=256, experts_per_token=8, active_params=36_700_000_000),
            mla=MLA(kv_lora_rank=512, qk_rope_head_dim=64),
        ),
        description="DeepSeek-V3: MoE (256 experts, 8 per token) with latent attention, FP8.",
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
    layers = _require(config, _LAYER_KEYS, "layer count")
    hidden = _require(config, _HIDDEN_KEYS, "hidden size")
    heads = _require(config, _HEAD_KEYS, "attention head count")
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

    shared_part = embeddings + layers * (attention + norms_per_layer) + hidden
    return shared_part + all_mlp, shared_part + active_mlp


def _kv_heads(config: Mapping[str, object], heads: int) -> int:
    if config.get("multi_query_attention") is False:
        return heads
    return _int(config, _KV_HEAD_KEYS) or heads


def architecture_from_hf_config(config: Mapping[str, object], params: int | None = None) -> Architecture:
    """An Architecture from a Hugging Face config.json (already parsed into a mapping).

    Reads the Llama, Qwen2, Mistral, Mixtral, DeepSeek-V2/V3 and ChatGLM key names. config.json
    does not state the parameter count: pass `params` (from the model card or the safetensors
    index) when known, otherwise it is estimated from the shapes with `estimate_params`.
    """
    config = _text_config(config)
    layers = _require(config, _LAYER_KEYS, "layer count")
    hidden = _require(config, _HIDDEN_KEYS, "hidden size")
    heads = _require(config, _HEAD_KEYS, "attention head count")
    kv_heads = _kv_heads(config, heads)
    context = _require(config, _CONTEXT_KEYS, "context length")
    vocab = _int(config, _VOCAB_KEYS)

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
        moe = MoE(
            experts=experts,
            experts_per_token=per_token,
            active_params=min(active, params) if params is not None else active,
        )
    return Architecture(
        params=params if params is not None else total,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=context,
        vocab_size=vocab,
        moe=moe,
        mla=mla,
    )
