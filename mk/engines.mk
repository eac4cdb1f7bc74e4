# The engines' own parsers: every rendered sample's vLLM command line through vLLM's argument
# parser, every rendered Triton config.pbtxt through Triton's ModelConfig protobuf (docs/sizing.md).
# Not part of `make test`: the side environment holds vLLM and torch, a few GB.
.PHONY: check-engine-args

ENGINES_VENV ?= .venv-engines
ENGINES_STAMP := $(ENGINES_VENV)/.installed
# vLLM as in the default engine images (render/images.py); the newest tritonclient on PyPI, whose
# model_config.proto is the server's.
ENGINES_VLLM_VERSION ?= 0.23.0
ENGINES_TRITONCLIENT_VERSION ?= 2.73.0

$(ENGINES_STAMP):
	$(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_VENV)/bin/pip install --quiet --upgrade pip
	$(ENGINES_VENV)/bin/pip install --quiet 'vllm==$(ENGINES_VLLM_VERSION)' \
		'tritonclient[grpc]==$(ENGINES_TRITONCLIENT_VERSION)'
	@touch $@

check-engine-args: $(STAMP) $(ENGINES_STAMP) ## Rendered samples through vLLM's own argument parser and Triton's ModelConfig
	$(ENGINES_VENV)/bin/python tools/engine_args/check.py --gpupool $(GPUPOOL)
