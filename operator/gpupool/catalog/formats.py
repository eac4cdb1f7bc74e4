"""Weight formats read from a config.json `quantization_config`, sized in their own format.

A checkpoint that ships quantised says so in its config.json; vLLM reads that block and loads the
weights as they are, so gpupool sizes them the same way instead of by `--precision`:

- block-wise FP8 (DeepSeek-V3/R1, Qwen3 FP8): `quant_method: fp8`, `weight_block_size: [128, 128]`,
  one byte a weight plus a float32 scale per 128 x 128 block. vLLM refuses to start when a
  tensor-parallel rank's share of an MLP is not a whole number of blocks ("The output_size of
  gate's and up's weight = N is not divisible by weight quantization block_n = 128",
  vllm/model_executor/layers/quantization/fp8.py; https://github.com/vllm-project/vllm/pull/39046).
- MXFP4 (gpt-oss): `quant_method: mxfp4`, 4-bit values with one 8-bit scale per 32 weights, on the
  MoE experts only (the attention, router and embeddings stay bf16; `modules_to_not_convert`).
- NVFP4 (ModelOpt, Blackwell): `quant_method: modelopt` with `quant_algo: NVFP4`, or
  compressed-tensors `nvfp4-pack-quantized`: 4-bit values with one FP8 scale per 16 weights.
- AWQ / GPTQ int4: `bits` and `group_size`: 4-bit values with a 16-bit scale and a packed 4-bit
  zero point per group.
- W8A8 / W4A8 (Ascend ModelSlim `quant_method: ascend`, or compressed-tensors int8): one byte or
  half a byte a weight, with per-channel scales that add well under 0.1%.

Embeddings and the LM head stay 16-bit in every format (vLLM quantises linear layers only).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from gpupool.catalog.types import Quantization, QuantizationMethod

# Block size of DeepSeek's and Qwen's FP8 checkpoints when weight_block_size is given.
FP8_BLOCK = 128
# MXFP4: one E8M0 scale per 32 weights (OCP Microscaling Formats v1.0).
MXFP4_GROUP = 32
# NVFP4: one FP8 (E4M3) scale per 16 weights (NVIDIA ModelOpt).
NVFP4_GROUP = 16
# vLLM pads MXFP4 expert weights for its kernels (vllm/model_executor/layers/quantization/mxfp4.py,
# Mxfp4MoEMethod.create_weights): the hidden size up to a multiple of 256 and each expert's
# intermediate size up to a multiple of 64 on the Triton and Marlin backends of Hopper and Ampere.
# gpt-oss-120b's 2,880 becomes 3,072: "Model loading took 64.38 GiB" on one H100
# (https://github.com/vllm-project/vllm/issues/33155) against 60.7 GiB unpadded.
MXFP4_HIDDEN_ALIGN = 256
MXFP4_INTERMEDIATE_ALIGN = 64


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def expert_padding(quantization: Quantization, hidden: int, expert_width: int) -> Fraction:
    """How much larger the engine stores each expert than its checkpoint shape (1 if not padded)."""
    if quantization.method is not QuantizationMethod.MXFP4:
        return Fraction(1)
    padded = _round_up(hidden, MXFP4_HIDDEN_ALIGN) * _round_up(expert_width, MXFP4_INTERMEDIATE_ALIGN)
    return Fraction(padded, hidden * expert_width)


def bytes_per_weight(quantization: Quantization) -> Fraction:
    """Bytes one quantised weight takes, its share of the scales included."""
    method = quantization.method
    if method is QuantizationMethod.FP8:
        block = quantization.block_size
        return Fraction(1) + (Fraction(4, block * block) if block else 0)
    if method is QuantizationMethod.MXFP4:
        return Fraction(1, 2) + Fraction(1, MXFP4_GROUP)
    if method is QuantizationMethod.NVFP4:
        return Fraction(1, 2) + Fraction(1, NVFP4_GROUP)
    bits = Fraction(quantization.weight_bits, 8)
    group = quantization.group_size
    if method in (QuantizationMethod.AWQ, QuantizationMethod.GPTQ) and group:
        # A 16-bit scale and a 4-bit zero point per group.
        return bits + (Fraction(2) + bits) / group
    return bits


def _int_field(config: Mapping[str, object], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"config.json field 'quantization_config.{key}' must be a positive integer")
    return value


def _block(config: Mapping[str, object]) -> int | None:
    block = config.get("weight_block_size")
    if block is None:
        return None
    if (
        not isinstance(block, list)
        or not block
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in block)
    ):
        raise ValueError(
            "config.json field 'quantization_config.weight_block_size' must be a list of integers"
        )
    return int(block[0])


def _compressed_tensors(config: Mapping[str, object]) -> Quantization:
    """compressed-tensors (LLM Compressor): the first config group's weight scheme."""
    groups = config.get("config_groups")
    fmt = str(config.get("format", ""))
    if "nvfp4" in fmt:
        return Quantization(method=QuantizationMethod.NVFP4, weight_bits=4, group_size=NVFP4_GROUP)
    if isinstance(groups, Mapping) and groups:
        first = next(iter(groups.values()))
        weights = first.get("weights") if isinstance(first, Mapping) else None
        if isinstance(weights, Mapping):
            bits = _int_field(weights, "num_bits") or 8
            kind = str(weights.get("type", "int"))
            if kind == "float" and bits == 8:
                return Quantization(method=QuantizationMethod.FP8, weight_bits=8)
            group = _int_field(weights, "group_size")
            method = QuantizationMethod.W8A8 if bits == 8 else QuantizationMethod.W4A8
            if bits == 4 and group:
                method = QuantizationMethod.GPTQ
            return Quantization(method=method, weight_bits=bits, group_size=group)
    raise ValueError(
        "config.json field 'quantization_config.config_groups' has no weight scheme gpupool can size"
    )


def quantization_from_config(config: Mapping[str, object]) -> Quantization | None:
    """The weight format a config.json declares, or None for an unquantised checkpoint.

    Raises ValueError with a one-line message naming the field gpupool cannot read.
    """
    block = config.get("quantization_config")
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ValueError("config.json field 'quantization_config' must be an object")
    method = str(block.get("quant_method", "")).lower()
    if method == "fp8":
        return Quantization(method=QuantizationMethod.FP8, weight_bits=8, block_size=_block(block))
    if method == "mxfp4":
        return Quantization(
            method=QuantizationMethod.MXFP4, weight_bits=4, group_size=MXFP4_GROUP, experts_only=True
        )
    if method == "modelopt":
        algo = str(block.get("quant_algo", "")).upper()
        if "FP4" in algo:
            return Quantization(method=QuantizationMethod.NVFP4, weight_bits=4, group_size=NVFP4_GROUP)
        if "FP8" in algo:
            return Quantization(method=QuantizationMethod.FP8, weight_bits=8)
        raise ValueError(
            f"config.json field 'quantization_config.quant_algo' {algo!r} is not a format gpupool sizes"
        )
    if method in ("awq", "gptq"):
        bits = _int_field(block, "bits") or 4
        group = _int_field(block, "group_size")
        kind = QuantizationMethod.AWQ if method == "awq" else QuantizationMethod.GPTQ
        return Quantization(method=kind, weight_bits=bits, group_size=group)
    if method == "compressed-tensors":
        return _compressed_tensors(block)
    if method == "ascend":
        # ModelSlim checkpoints: W8A8 unless the config says 4-bit weights (W4A8, W4A16).
        bits = 4 if "w4" in str(block.get("quant_type", block.get("model_quant_type", ""))).lower() else 8
        kind = QuantizationMethod.W4A8 if bits == 4 else QuantizationMethod.W8A8
        return Quantization(method=kind, weight_bits=bits)
    raise ValueError(
        f"config.json field 'quantization_config.quant_method' {method!r} is not a format gpupool sizes "
        "(fp8, mxfp4, modelopt, awq, gptq, compressed-tensors, ascend)"
    )
