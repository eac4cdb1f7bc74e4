# The fault suite (bench/faults.py): the operator SIGKILLed, kube-apiserver stopped, rapid edits,
# nodes deleted and NotReady, the leader killed with a standby, etcd restarted, a contended pool
# left alone for five minutes, the bad-manifest table. Against the local control plane, under the
# shared end-to-end lock; about 16 minutes on two cores. tests/e2e/test_faults.py runs a
# bounded subset. FAULTS_ARGS passes options, e.g. FAULTS_ARGS="--only kills --kills 5".
FAULTS_ARGS ?=

.PHONY: bench-faults

bench-faults: $(STAMP) ## Fault suite: kills, API/etcd outage, edits, node loss, takeover, contention (~16 min)
	flock /tmp/gpupool-e2e.lock $(PY) bench/faults.py $(FAULTS_ARGS)
