# Placement: packing instances onto fragmented pools, against the best packing (docs/placement.md).
.PHONY: bench-placement

bench-placement: $(STAMP) ## Packing quality and speed on realistic pools vs the exact optimum (results/placement.json)
	$(PY) bench/placement.py
