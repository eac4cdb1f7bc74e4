# Autoscaling benchmark: gpupool's policy against its peers (Knative, KubeAI, KEDA, AIBrix, Dynamo,
# llm-d), the HPA, static provisioning and the clairvoyant bound, replayed through the simulator
# on the built-in traces at three capacity errors (bench/autoscale.py, docs/autoscaling.md).

.PHONY: bench-autoscale bench-autoscale-quick

bench-autoscale: $(STAMP) ## Autoscaling benchmark, the full grid (~25 min on 2 cores): tables, frontiers PNG, docs/autoscaling.md
	$(PY) bench/autoscale.py --out results/autoscale.json --docs docs/autoscaling.md \
		--plot docs/autoscaling-frontiers.png

bench-autoscale-quick: $(STAMP) ## Autoscaling benchmark on five short traces (~4 min on 2 cores), prints only
	$(PY) bench/autoscale.py --quick --out results/autoscale-quick.json --plot results/autoscale-quick.png
