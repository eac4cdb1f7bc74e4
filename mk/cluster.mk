# Local Kubernetes control plane (tools/localcluster): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler built from source, kwok-simulated
# GPU/NPU/CPU nodes. Node counts: NVIDIA_NODES, ASCEND_NODES, CPU_NODES.
LOCALCLUSTER := tools/localcluster

# Passed to the scripts when set on the make command line or in the environment.
export NVIDIA_NODES ASCEND_NODES CPU_NODES GPUPOOL_CLUSTER_DIR GPUPOOL_CACHE

.PHONY: cluster-build cluster-up cluster-down cluster-status cluster-nodes cluster-env kind-up kind-down

cluster-build: ## Build (or reuse) the pinned Kubernetes, etcd and kwok binaries
	@$(LOCALCLUSTER)/build.sh >/dev/null

cluster-up: ## Start the local control plane with simulated accelerator nodes (idempotent)
	@$(LOCALCLUSTER)/cluster.sh up

cluster-down: ## Stop the local control plane and remove its state
	@$(LOCALCLUSTER)/cluster.sh down

cluster-status: ## Show the state of each local control plane component
	@$(LOCALCLUSTER)/cluster.sh status

cluster-nodes: ## Create/delete simulated nodes to match NVIDIA_NODES, ASCEND_NODES, CPU_NODES
	@$(LOCALCLUSTER)/cluster.sh nodes

cluster-env: ## Print shell exports (KUBECONFIG, PATH, ...) of the running cluster, to eval
	@$(LOCALCLUSTER)/cluster.sh env

kind-up: ## The same labelled nodes on kind (needs Docker)
	@$(LOCALCLUSTER)/kind/kind.sh up

kind-down: ## Delete the kind cluster
	@$(LOCALCLUSTER)/kind/kind.sh down

.PHONY: lws-build lws-up lws-down

lws-build: ## Build (or reuse) the pinned LeaderWorkerSet controller
	@$(LOCALCLUSTER)/lws/build.sh >/dev/null

lws-up: ## Start the LeaderWorkerSet controller against the running local cluster
	@$(LOCALCLUSTER)/lws.sh start

lws-down: ## Stop it and remove its CRDs and webhooks
	@$(LOCALCLUSTER)/lws.sh stop

.PHONY: kueue-build kueue-up kueue-down

kueue-build: ## Build (or reuse) the pinned Kueue controller manager
	@$(LOCALCLUSTER)/kueue/build.sh >/dev/null

kueue-up: ## Start Kueue against the running local cluster (after lws-up)
	@$(LOCALCLUSTER)/kueue.sh start

kueue-down: ## Stop it and remove its CRDs and webhooks
	@$(LOCALCLUSTER)/kueue.sh stop
