"""config.json shapes beyond the uniform decoder: weight formats, sliding windows, NAS layers."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest

from catalog.hf_configs import GPT_OSS_120B
from gpupool.catalog.formats import bytes_per_weight, quantization_from_config
from gpupool.catalog.models import architecture_from_hf_config
from gpupool.catalog.types import Precision, Quantization, QuantizationMethod
from gpupool.sizing import weight_bytes

LLAMA: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
}


@pytest.mark.parametrize(
    ("block", "method", "per_weight"),
    [
        (
            {"quant_method": "fp8", "weight_block_size": [128, 128]},
            QuantizationMethod.FP8,
            Fraction(1) + Fraction(4, 128 * 128),
        ),
        ({"quant_method": "mxfp4"}, QuantizationMethod.MXFP4, Fraction(17, 32)),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, QuantizationMethod.NVFP4, Fraction(9, 16)),
        # 4-bit values, a 16-bit scale and a 4-bit zero per 128: (64 + 2 + 0.5) / 128
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, QuantizationMethod.AWQ, Fraction(133, 256)),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, QuantizationMethod.GPTQ, Fraction(133, 256)),
        ({"quant_method": "ascend"}, QuantizationMethod.W8A8, Fraction(1)),
        ({"quant_method": "ascend", "quant_type": "W4A8_DYNAMIC"}, QuantizationMethod.W4A8, Fraction(1, 2)),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int"}}},
            },
            QuantizationMethod.W8A8,
            Fraction(1),
        ),
    ],
)
def test_formats_are_sized_in_their_own_bytes(
    block: dict[str, Any], method: QuantizationMethod, per_weight: Fraction
) -> None:
    quantization = quantization_from_config({"quantization_config": block})
    assert quantization is not None
    assert quantization.method is method
    assert bytes_per_weight(quantization) == per_weight


def test_an_unknown_format_is_one_line_naming_the_field() -> None:
    with pytest.raises(
        ValueError, match=r"^config.json field 'quantization_config.quant_method' 'hqq'"
    ) as err:
        quantization_from_config({"quantization_config": {"quant_method": "hqq"}})
    assert "\n" not in str(err.value)


def test_a_quantised_checkpoint_ignores_the_requested_precision() -> None:
    fp8 = architecture_from_hf_config({**LLAMA, "quantization_config": {"quant_method": "fp8"}})
    plain = architecture_from_hf_config(LLAMA)
    # Linear layers at one byte, embeddings and LM head (2 x 128,256 x 4,096) at two.
    embeddings = 2 * 128_256 * 4096
    assert weight_bytes(fp8, Precision.BF16) == (plain.params - embeddings) + 2 * embeddings
    assert weight_bytes(plain, Precision.BF16) == 2 * plain.params


def test_mxfp4_quantises_only_the_experts() -> None:
    arch = architecture_from_hf_config(GPT_OSS_120B)
    assert arch.quantization == Quantization(
        method=QuantizationMethod.MXFP4, weight_bits=4, group_size=32, experts_only=True
    )
    experts = 36 * 128 * 3 * 2880 * 2880
    # vLLM pads the expert hidden size 2,880 to 3,072 (a multiple of 256) for its MXFP4 kernels.
    padded = Fraction(17, 32) * Fraction(3072, 2880)
    assert weight_bytes(arch, Precision.BF16) == math.ceil(experts * padded + 2 * (arch.params - experts))
    # gpt-oss alternates sliding-window (128 tokens) and full-attention layers.
    assert (arch.sliding_window, arch.sliding_window_layers) == (128, 18)


def test_qwen2_turns_its_configured_window_off() -> None:
    arch = architecture_from_hf_config({**LLAMA, "sliding_window": 4096, "use_sliding_window": False})
    assert arch.sliding_window is None and arch.sliding_window_layers == 0


def test_gemma_pattern_keeps_every_nth_layer_full() -> None:
    arch = architecture_from_hf_config({**LLAMA, "sliding_window": 1024, "sliding_window_pattern": 6})
    # 32 layers, every 6th full: 5 full, 27 sliding.
    assert arch.sliding_window_layers == 27


def test_nested_text_config_is_read() -> None:
    arch = architecture_from_hf_config({"model_type": "llava", "text_config": LLAMA, "vision_config": {}})
    assert arch.layers == 32 and arch.intermediate_size == 14336


NEMOTRON_NAS: dict[str, Any] = {
    # The key names of nvidia/Llama-3_3-Nemotron-Super-49B-v1's config.json (model_type
    # nemotron-nas): per-layer block_configs where attention may be a no-op with null fields.
    "model_type": "nemotron-nas",
    "hidden_size": 8192,
    "num_attention_heads": 64,
    "num_hidden_layers": 4,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "block_configs": [
        {"attention": {"n_heads_in_group": 8, "no_op": False}, "ffn": {"ffn_mult": 2.625, "no_op": False}},
        {"attention": {"n_heads_in_group": None, "no_op": True}, "ffn": {"ffn_mult": 1.3125, "no_op": False}},
        {
            "attention": {"n_heads_in_group": None, "replace_with_linear": True},
            "ffn": {"ffn_mult": None, "no_op": True},
        },
        {"attention": {"n_heads_in_group": 8}, "ffn": {"ffn_mult": 5.25}},
    ],
}


def test_nemotron_nas_layers_with_null_fields() -> None:
    arch = architecture_from_hf_config(NEMOTRON_NAS)
    # Only the two layers with attention hold KV cache; 64 heads / 8 per group = 8 KV heads.
    assert arch.layers == 2
    assert arch.kv_heads == 8
    # ffn_mult 5.25 x 8,192 x 2 / 3 = 28,672, already a multiple of 256.
    assert arch.intermediate_size == 28_672


def test_a_bad_nas_field_is_one_line_naming_it() -> None:
    broken = {**NEMOTRON_NAS, "block_configs": [{"attention": {"n_heads_in_group": "8"}, "ffn": {}}]}
    with pytest.raises(ValueError, match=r"'block_configs\[0\].attention.n_heads_in_group'") as err:
        architecture_from_hf_config(broken)
    assert "\n" not in str(err.value)


def test_a_vision_tower_is_counted() -> None:
    # https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json; the model card's
    # safetensors count is 8.29B, the language model alone 7.6B.
    config = {
        "model_type": "qwen2_5_vl",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 128000,
        "tie_word_embeddings": False,
        "vision_config": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "spatial_merge_size": 2,
        },
    }
    arch = architecture_from_hf_config(config)
    assert arch.params == pytest.approx(8.29e9, rel=0.01)
    without = architecture_from_hf_config({k: v for k, v in config.items() if k != "vision_config"})
    assert arch.params - without.params == pytest.approx(0.675e9, rel=0.02)


def test_hybrid_layers_without_kv_cache_are_left_out() -> None:
    # Qwen3-Next-80B-A3B: three linear-attention (Gated DeltaNet) layers for every full one
    # (https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json); only the
    # 12 full-attention layers of 48 keep a per-token KV cache.
    kinds = ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 12
    arch = architecture_from_hf_config({**LLAMA, "num_hidden_layers": 48, "layer_types": kinds})
    assert arch.layers == 12
