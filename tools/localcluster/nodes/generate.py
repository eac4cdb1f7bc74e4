#!/usr/bin/env python3
"""Generate simulated accelerator nodes for the local cluster.

Prints one ``v1`` List of Nodes (JSON, which kubectl reads as YAML) so that
hundreds of nodes are created by a single ``kubectl create -f -``. Counts come
from flags or from the environment (NVIDIA_NODES, ASCEND_NODES, CPU_NODES).

The nodes carry the ``kwok.x-k8s.io/node=fake`` annotation that kwok is started
to manage; kwok keeps the capacity given here and reports them Ready.

``--kind-node NAME CLASS`` prints, instead, the labels, taints and extended
resources of one node class as JSON, for labelling real kind nodes alike.
Standard library only, so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# Marks nodes made by this generator, so a re-run can prune the ones no
# longer wanted without touching anything else.
GENERATED_LABEL = ("type", "kwok")

# Labels the NVIDIA GPU Operator's GPU Feature Discovery puts on a node, with
# the values it reports on an 8 x H100 80GB HBM3 (SXM) server; gpu.memory is
# the framebuffer in MiB as listed by `kubectl get node --show-labels`.
NVIDIA_H100 = {
    "labels": {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.memory": "81559",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.family": "hopper",
        "gpu-type": "nvidia",
    },
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    "resources": {"nvidia.com/gpu": "8"},
    "cpu": "96",
    "memory": "1Ti",
}

# Labels Huawei's Ascend Device Plugin (MindCluster) puts on a node:
# accelerator=huawei-Ascend910 and node.kubernetes.io/npu.chip.name (910B3 for
# an Atlas 800T A2 with 64 GB HBM per chip); host-arch and workerselector are
# the MindCluster scheduling labels. Source: MindCluster 7.3 scheduling guide,
# "Native Kubernetes Objects", node labels table. The plugin sets no taint;
# the NoSchedule taint below is the usual cluster-operator practice of
# reserving accelerator nodes, mirroring the NVIDIA one.
ASCEND_910B = {
    "labels": {
        "accelerator": "huawei-Ascend910",
        "node.kubernetes.io/npu.chip.name": "910B3",
        "host-arch": "huawei-x86",
        "workerselector": "dls-worker-node",
        "gpu-type": "ascend",
    },
    "taints": [{"key": "huawei.com/Ascend910", "value": "present", "effect": "NoSchedule"}],
    "resources": {"huawei.com/Ascend910": "8"},
    "cpu": "192",
    "memory": "1536Gi",
}

# No gpu-type label at all, so "gpu-type exists" selects accelerator nodes.
CPU_ONLY = {
    "labels": {},
    "taints": [],
    "resources": {},
    "cpu": "32",
    "memory": "128Gi",
}

CLASSES = {"nvidia": NVIDIA_H100, "ascend": ASCEND_910B, "cpu": CPU_ONLY}
NAME_PREFIX = {"nvidia": "kwok-nvidia-", "ascend": "kwok-ascend-", "cpu": "kwok-cpu-"}
MAX_PODS = "110"


def pod_cidr(serial: int) -> str:
    """One /24 per node from 10.0.0.0/8, so kwok hands out distinct pod IPs.

    The addresses are data only: no pod runs and nothing listens on them.
    """
    return f"10.{(serial >> 8) & 0xFF}.{serial & 0xFF}.0/24"


def node(cls: str, index: int, serial: int) -> dict[str, Any]:
    spec = CLASSES[cls]
    name = f"{NAME_PREFIX[cls]}{index}"
    capacity = {"cpu": spec["cpu"], "memory": spec["memory"], "pods": MAX_PODS, **spec["resources"]}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": f"simulated-{cls}",
        GENERATED_LABEL[0]: GENERATED_LABEL[1],
        **spec["labels"],
    }
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": pod_cidr(serial), "podCIDRs": [pod_cidr(serial)]},
        # The API server keeps status on create; kwok's node-initialize stage
        # then keeps this capacity and adds conditions.
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }
    if spec["taints"]:
        body["spec"]["taints"] = [dict(t) for t in spec["taints"]]
    return body


def node_list(counts: dict[str, int], skip: set[str]) -> dict[str, Any]:
    items = []
    serial = 0
    for cls in ("nvidia", "ascend", "cpu"):
        for i in range(counts[cls]):
            serial += 1
            n = node(cls, i, serial)
            if n["metadata"]["name"] not in skip:
                items.append(n)
    return {"apiVersion": "v1", "kind": "List", "items": items}


def names(counts: dict[str, int]) -> list[str]:
    return [f"{NAME_PREFIX[c]}{i}" for c in ("nvidia", "ascend", "cpu") for i in range(counts[c])]


def kind_node(cls: str) -> dict[str, Any]:
    spec = CLASSES[cls]
    return {"labels": spec["labels"], "taints": spec["taints"], "resources": spec["resources"]}


def env_count(var: str, default: int) -> int:
    raw = os.environ.get(var, "")
    return int(raw) if raw.strip() else default


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nvidia", type=int, default=env_count("NVIDIA_NODES", 4))
    p.add_argument("--ascend", type=int, default=env_count("ASCEND_NODES", 2))
    p.add_argument("--cpu", type=int, default=env_count("CPU_NODES", 2))
    p.add_argument("--skip", default="", help="comma-separated node names to leave out (already present)")
    p.add_argument("--names", action="store_true", help="print only the node names, one a line")
    p.add_argument(
        "--kind-node", nargs=2, metavar=("NAME", "CLASS"), help="print one class's labels for kind"
    )
    a = p.parse_args(argv)
    if a.kind_node:
        name, cls = a.kind_node
        if cls not in CLASSES:
            p.error(f"unknown class {cls!r}; one of {sorted(CLASSES)}")
        json.dump({"name": name, **kind_node(cls)}, sys.stdout)
        print()
        return 0
    counts = {"nvidia": a.nvidia, "ascend": a.ascend, "cpu": a.cpu}
    if any(v < 0 for v in counts.values()) or sum(counts.values()) > 65000:
        p.error("node counts must be between 0 and 65000 in all")
    if a.names:
        print("\n".join(names(counts)))
        return 0
    skip = {s for s in a.skip.split(",") if s}
    json.dump(node_list(counts, skip), sys.stdout, separators=(",", ":"))
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
