"""The model catalog, lookup, and reading Hugging Face config.json files.

The config dicts below carry the shape fields of each model's config.json on Hugging Face
(https://huggingface.co/<hf_id>/blob/main/config.json), in each family's own key names.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.catalog.models import (
    MODELS,
    UnknownModelError,
    architecture_from_hf_config,
    estimate_params,
    get_model,
    model_names,
)

LLAMA_31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "attention_bias": False,
    "head_dim": 128,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
LLAMA_31_70B = {**LLAMA_31_8B, "hidden_size": 8192, "intermediate_size": 28672}
LLAMA_31_70B |= {"num_attention_heads": 64, "num_hidden_layers": 80}
LLAMA_31_405B = {**LLAMA_31_8B, "hidden_size": 16384, "intermediate_size": 53248}
LLAMA_31_405B |= {"num_attention_heads": 128, "num_hidden_layers": 126}
QWEN25_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "max_position_embeddings": 32768,
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
}
QWEN25_32B = {**QWEN25_7B, "hidden_size": 5120, "intermediate_size": 27648}
QWEN25_32B |= {"num_attention_heads": 40, "num_hidden_layers": 64, "num_key_value_heads": 8}
QWEN25_72B = {**QWEN25_7B, "hidden_size": 8192, "intermediate_size": 29568}
QWEN25_72B |= {"num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8}
R1_DISTILL_QWEN_32B = {**QWEN25_32B, "max_position_embeddings": 131072}
GLM_4_9B_CHAT: dict[str, Any] = {
    "model_type": "chatglm",
    "architectures": ["ChatGLMModel"],
    "add_bias_linear": False,
    "add_qkv_bias": True,
    "ffn_hidden_size": 13696,
    "hidden_size": 4096,
    "kv_channels": 128,
    "multi_query_attention": True,
    "multi_query_group_num": 2,
    "num_attention_heads": 32,
    "num_hidden_layers": 40,
    "num_layers": 40,
    "padded_vocab_size": 151552,
    "seq_length": 131072,
    "tie_word_embeddings": False,
}
MIXTRAL_8X7B: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "num_attention_heads": 32,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "tie_word_embeddings": False,
    "vocab_size": 32000,
}
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "first_k_dense_replace": 3,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "moe_intermediate_size": 2048,
    "moe_layer_freq": 1,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "tie_word_embeddings": False,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
}
# https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json; not in the catalog,
# here to show the mistral key names are read. Model card: 7.24B parameters.
MISTRAL_7B: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "vocab_size": 32000,
}

CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": LLAMA_31_8B,
    "llama-3.1-70b": LLAMA_31_70B,
    "llama-3.1-405b": LLAMA_31_405B,
    "qwen2.5-7b": QWEN25_7B,
    "qwen2.5-32b": QWEN25_32B,
    "qwen2.5-72b": QWEN25_72B,
    "deepseek-r1-distill-qwen-32b": R1_DISTILL_QWEN_32B,
    "glm-4-9b": GLM_4_9B_CHAT,
    "mixtral-8x7b": MIXTRAL_8X7B,
    "deepseek-v3": DEEPSEEK_V3,
}

# Rounded totals from the model cards or their safetensors metadata, independent of the formula.
CARD_PARAMS = {
    "llama-3.1-8b": 8.03e9,
    "llama-3.1-70b": 70.6e9,
    "llama-3.1-405b": 406e9,
    "qwen2.5-7b": 7.61e9,
    "qwen2.5-32b": 32.8e9,  # safetensors; the card's text says 32.5B, within 1% as well
    "qwen2.5-72b": 72.7e9,
    "deepseek-r1-distill-qwen-32b": 32.8e9,
    "glm-4-9b": 9.4e9,
    "mixtral-8x7b": 46.7e9,
    "deepseek-v3": 671e9,  # README_WEIGHTS.md, main model without the MTP module
}


def test_catalog_holds_the_required_models_with_lower_case_names() -> None:
    assert set(CONFIGS) <= set(model_names())
    for model in MODELS.values():
        assert model.name == model.name.lower()
        assert "/" in model.hf_id
    assert get_model("llama-3.1-8b").hf_id == "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_catalog_shapes_are_the_config_json_shapes(name: str) -> None:
    catalog = get_model(name).architecture
    read = architecture_from_hf_config(CONFIGS[name], params=catalog.params)
    if catalog.moe is not None and read.moe is not None:
        # Active counts are quoted from the vendors; compare the expert layout only.
        read = read.model_copy(update={"moe": catalog.moe})
    assert read == catalog


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_estimated_params_are_within_two_percent_of_the_model_card(name: str) -> None:
    total, _ = estimate_params(CONFIGS[name])
    assert total == pytest.approx(CARD_PARAMS[name], rel=0.02)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_catalog_params_are_the_exact_shape_counts(name: str) -> None:
    total, _ = estimate_params(CONFIGS[name])
    assert get_model(name).architecture.params == total


def test_hand_checked_llama_8b_count() -> None:
    # embeddings 128,256 x 4,096 = 525,336,576, twice (untied)        = 1,050,673,152
    # per layer: q 4,096^2 + k,v 2 x 4,096 x 1,024 + o 4,096^2         =    41,943,040
    #            MLP 3 x 4,096 x 14,336                                 =   176,160,768
    #            2 norms x 4,096                                        =         8,192
    # 32 layers x 218,112,000 = 6,979,584,000; + final norm 4,096     = 8,030,261,248
    assert estimate_params(LLAMA_31_8B) == (8_030_261_248, 8_030_261_248)


def test_mixtral_active_params_count_two_of_eight_experts() -> None:
    total, active = estimate_params(MIXTRAL_8X7B)
    assert total == pytest.approx(46.7e9, rel=0.01)
    assert active == pytest.approx(12.9e9, rel=0.01)  # Mistral: 12.9B active per token


def test_deepseek_v3_active_params_near_the_published_37b() -> None:
    _, active = estimate_params(DEEPSEEK_V3)
    assert active == pytest.approx(37e9, rel=0.03)  # the paper's 37B; README says 36.7B


def test_mistral_key_names_are_read() -> None:
    arch = architecture_from_hf_config(MISTRAL_7B)
    assert arch.params == pytest.approx(7.24e9, rel=0.01)
    assert (arch.layers, arch.kv_heads, arch.head_dim) == (32, 8, 128)


def test_chatglm_key_names_are_read() -> None:
    arch = architecture_from_hf_config(GLM_4_9B_CHAT)
    assert (arch.layers, arch.kv_heads, arch.head_dim) == (40, 2, 128)
    assert arch.max_position_embeddings == 131_072  # from seq_length
    assert arch.vocab_size == 151_552  # from padded_vocab_size


def test_deepseek_v3_is_read_as_mla_and_moe() -> None:
    arch = architecture_from_hf_config(DEEPSEEK_V3)
    assert arch.mla is not None and arch.moe is not None
    assert (arch.mla.kv_lora_rank, arch.mla.qk_rope_head_dim) == (512, 64)
    assert (arch.moe.experts, arch.moe.experts_per_token) == (256, 8)
    assert arch.head_dim == 128 + 64


def test_explicit_params_win_over_the_estimate() -> None:
    assert architecture_from_hf_config(LLAMA_31_8B, params=8_000_000_000).params == 8 * 10**9


def test_nested_text_config_is_read() -> None:
    wrapped = {"model_type": "llava", "text_config": LLAMA_31_8B}
    assert architecture_from_hf_config(wrapped).layers == 32


def test_missing_shapes_are_reported_by_name() -> None:
    broken = {k: v for k, v in LLAMA_31_8B.items() if k != "num_hidden_layers"}
    with pytest.raises(ValueError, match=r"no layer count .*num_hidden_layers"):
        architecture_from_hf_config(broken)


def test_non_integer_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="'hidden_size' must be an integer"):
        architecture_from_hf_config({**LLAMA_31_8B, "hidden_size": "4096"})


def test_get_model_accepts_the_hugging_face_id_in_any_case() -> None:
    assert get_model("Qwen/Qwen2.5-7B-Instruct").name == "qwen2.5-7b"
    assert get_model("LLAMA-3.1-70B").name == "llama-3.1-70b"


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError) as error:
        get_model("llama-3-70b")
    assert "Did you mean llama-3.1-70b" in str(error.value)
    assert "Known models: llama-3.1-8b" in str(error.value)
    assert isinstance(error.value, ValueError)
