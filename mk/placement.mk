# Placement: packing instances onto fragmented pools, against the best packing, and a day of shared
# demand per tier on one pool (docs/placement.md).
.PHONY: bench-placement

bench-placement: $(STAMP) ## Packing vs the exact optimum, and a day of tiered demand on one pool (results/)
	$(PY) bench/placement.py
	$(PY) bench/sharing.py
