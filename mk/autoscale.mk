# Autoscaling benchmark: gpupool's policy against static provisioning and the Kubernetes HPA,
# replayed through the simulator on the built-in traces (bench/autoscale.py, docs/autoscaling.md).

.PHONY: bench-autoscale

bench-autoscale: $(STAMP) ## Autoscaling benchmark: print the tables, refresh docs/autoscaling.md, write results/
	$(PY) bench/autoscale.py --out results/autoscale.json --docs docs/autoscaling.md
