"""A table of bad ModelDeployments and InferencePools, and what each must get back.

Every case is either refused by the API server (the CRD's OpenAPI schema or a CEL rule), with a
message that names the field, or stored and answered by a status condition whose reason and
message say what is wrong. The end-to-end suite (test_bad_input.py) applies them all against a
real API server and operator; the unit suite (tests/unit/api/test_api_bad_input.py) checks the same
table against the pydantic models and the pure core.

The YAML files in bad/ (each with a `# expect:` line) join the table as refused cases.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "bad-input"
BAD_DIR = Path(__file__).resolve().parent / "bad"

# Pools the table's stored pools and models use; the sample pools provide the first two.
NVIDIA_POOL = "nvidia-h100"
ASCEND_POOL = "ascend-910b"
INVALID_POOL = "bad-pool-shared-namespace"
QUOTA_POOL = "bad-pool-zero-quota"
CPU_POOL = "bad-pool-cpu-only"

DROP = object()  # a value that removes the key from the base spec


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # ModelDeployment or InferencePool
    spec: Any
    # Refused: text the API server's refusal must contain (it names the field).
    refused: str | None = None
    # Answered: the condition type, its reason, and a text its message must contain.
    condition: tuple[str, str, str] | None = None
    # Refused by the API server but not by the operator's own models (an unknown field the
    # API server's strict decoding refuses is one pydantic also refuses; this marks the others).
    schema_only: bool = False

    @property
    def namespaced(self) -> bool:
        return self.kind == "ModelDeployment"

    def manifest(self, namespace: str = NAMESPACE) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name}
        if self.namespaced:
            metadata["namespace"] = namespace
        return {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec,
        }


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DROP:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict) and value:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


MODEL_BASE: dict[str, Any] = {
    "model": {"name": "llama-3.1-8b"},
    "pool": NVIDIA_POOL,
    "traffic": {"peakQps": 1},
}
POOL_BASE: dict[str, Any] = {
    "vendor": "nvidia",
    "accelerator": "H100-80GB",
    "acceleratorsPerNode": 8,
    "nodeSelector": {"gpupool.io/test": "bad-input-nothing"},
}
ARCHITECTURE: dict[str, Any] = {
    "params": 1_000_000_000,
    "layers": 16,
    "hiddenSize": 2048,
    "attentionHeads": 16,
    "kvHeads": 8,
    "headDim": 128,
    "maxPositionEmbeddings": 8192,
}
CUSTOM: dict[str, Any] = {
    "model": {"name": DROP, "architecture": ARCHITECTURE, "servedName": "custom"},
    "weights": {"huggingFace": {"id": "example/custom-1b"}},
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")


def model(
    name: str, refused: str | None = None, condition: tuple[str, str, str] | None = None, **spec: Any
) -> Case:
    return Case(f"m-{_slug(name)}", "ModelDeployment", _merge(MODEL_BASE, spec), refused, condition)


def custom(
    name: str, refused: str | None = None, condition: tuple[str, str, str] | None = None, **spec: Any
) -> Case:
    """A model with explicit shapes (model.architecture)."""
    return Case(
        f"m-{_slug(name)}", "ModelDeployment", _merge(_merge(MODEL_BASE, CUSTOM), spec), refused, condition
    )


def arch(name: str, refused: str, **shapes: Any) -> Case:
    return custom(name, refused, model={"architecture": shapes})


def pool(
    name: str, refused: str | None = None, condition: tuple[str, str, str] | None = None, **spec: Any
) -> Case:
    return Case(f"bad-pool-{_slug(name)}", "InferencePool", _merge(POOL_BASE, spec), refused, condition)


def _yaml_cases() -> list[Case]:
    """The hand-written files of bad/: each is refused with the text of its `# expect:` lines."""
    cases = []
    for path in sorted(BAD_DIR.glob("*.yaml")):
        text = path.read_text()
        expected = [
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# expect:")
        ]
        doc = yaml.safe_load(text)
        name = f"{'bad-pool-' if doc['kind'] == 'InferencePool' else 'm-'}file-{path.stem}"
        cases.append(Case(name, doc["kind"], doc["spec"], expected[0]))
    return cases


def _numeric_bounds() -> list[Case]:
    """Every bounded number of a ModelDeployment, below its minimum and above its maximum."""
    bounds: list[tuple[str, dict[str, Any], str]] = [
        ("peakQps negative", {"traffic": {"peakQps": -1}}, "spec.traffic.peakQps"),
        ("peakQps 1e308", {"traffic": {"peakQps": 1e308}}, "spec.traffic.peakQps"),
        ("peakQps 1e7", {"traffic": {"peakQps": 10_000_000}}, "spec.traffic.peakQps"),
        ("qpsPerInstance zero", {"traffic": {"qpsPerInstance": 0}}, "spec.traffic.qpsPerInstance"),
        ("qpsPerInstance huge", {"traffic": {"qpsPerInstance": 1e300}}, "spec.traffic.qpsPerInstance"),
        ("headroom negative", {"traffic": {"headroomPercent": -5}}, "spec.traffic.headroomPercent"),
        ("headroom 10000", {"traffic": {"headroomPercent": 10_000}}, "spec.traffic.headroomPercent"),
        ("concurrency zero", {"traffic": {"concurrency": 0}}, "spec.traffic.concurrency"),
        ("concurrency huge", {"traffic": {"concurrency": 1_000_000}}, "spec.traffic.concurrency"),
        ("latency zero", {"traffic": {"latencySloMs": 0}}, "spec.traffic.latencySloMs"),
        ("latency a year", {"traffic": {"latencySloMs": 31_536_000_000}}, "spec.traffic.latencySloMs"),
        ("replicas negative", {"replicas": -1}, "spec.replicas"),
        ("replicas a billion", {"replicas": 1_000_000_000}, "spec.replicas"),
        ("replicas int64 max", {"replicas": 9_223_372_036_854_775_807}, "spec.replicas"),
        ("minReplicas negative", {"scaling": {"minReplicas": -1}}, "spec.scaling.minReplicas"),
        ("minReplicas huge", {"scaling": {"minReplicas": 50_000}}, "spec.scaling.minReplicas"),
        ("maxReplicas huge", {"scaling": {"maxReplicas": 99_999_999}}, "spec.scaling.maxReplicas"),
        ("maxModelLen tiny", {"maxModelLen": 64}, "spec.maxModelLen"),
        ("maxModelLen huge", {"maxModelLen": 99_999_999}, "spec.maxModelLen"),
        (
            "gpuMemoryUtilization zero",
            {"engine": {"gpuMemoryUtilization": 0}},
            "spec.engine.gpuMemoryUtilization",
        ),
        (
            "gpuMemoryUtilization 1.5",
            {"engine": {"gpuMemoryUtilization": 1.5}},
            "spec.engine.gpuMemoryUtilization",
        ),
        ("tensorParallel zero", {"engine": {"tensorParallel": 0}}, "spec.engine.tensorParallel"),
        ("tensorParallel 128", {"engine": {"tensorParallel": 128}}, "spec.engine.tensorParallel"),
        ("maxNumSeqs zero", {"engine": {"maxNumSeqs": 0}}, "spec.engine.maxNumSeqs"),
        ("maxNumSeqs huge", {"engine": {"maxNumSeqs": 10_000_000}}, "spec.engine.maxNumSeqs"),
        (
            "maxNumBatchedTokens zero",
            {"engine": {"maxNumBatchedTokens": 0}},
            "spec.engine.maxNumBatchedTokens",
        ),
        (
            "maxNumBatchedTokens huge",
            {"engine": {"maxNumBatchedTokens": 2**40}},
            "spec.engine.maxNumBatchedTokens",
        ),
        (
            "pools priority 1000",
            {"pool": DROP, "pools": [{"name": NVIDIA_POOL, "priority": 1000}]},
            "spec.pools[0].priority",
        ),
        (
            "pools maxInstances negative",
            {"pool": DROP, "pools": [{"name": NVIDIA_POOL, "maxInstances": -1}]},
            "spec.pools[0].maxInstances",
        ),
        (
            "autoscaling targetUtilization 2",
            {"autoscaling": {"enabled": True, "targetUtilization": 2}},
            "spec.autoscaling.targetUtilization",
        ),
        (
            "autoscaling scaleUpStep zero",
            {"autoscaling": {"enabled": True, "scaleUpStep": 0}},
            "spec.autoscaling.scaleUpStep",
        ),
    ]
    return [model(name, refused, **spec) for name, spec, refused in bounds]


def _wrong_types() -> list[Case]:
    types: list[tuple[str, dict[str, Any], str]] = [
        ("peakQps a word", {"traffic": {"peakQps": "lots"}}, "spec.traffic.peakQps"),
        ("replicas a word", {"replicas": "three"}, "spec.replicas"),
        ("replicas fraction", {"replicas": 2.5}, "spec.replicas"),
        ("maxModelLen a word", {"maxModelLen": "long"}, "spec.maxModelLen"),
        ("extraArgs a string", {"engine": {"extraArgs": "--enforce-eager"}}, "spec.engine.extraArgs"),
        ("extraArgs numbers", {"engine": {"extraArgs": [1, 2]}}, "spec.engine.extraArgs[0]"),
        ("model a string", {"model": "llama-3.1-8b"}, "spec.model"),
        ("traffic a list", {"traffic": [1, 2]}, "spec.traffic"),
        ("pool a number", {"pool": 7}, "spec.pool"),
        ("pools a string", {"pool": DROP, "pools": NVIDIA_POOL}, "spec.pools"),
        ("autoscaling enabled a word", {"autoscaling": {"enabled": "yes"}}, "spec.autoscaling.enabled"),
    ]
    return [model(name, refused, **spec) for name, spec, refused in types]


def _bad_names() -> list[Case]:
    names: list[tuple[str, dict[str, Any], str]] = [
        ("model name with spaces", {"model": {"name": "Llama 3"}}, "spec.model.name"),
        ("model name too long", {"model": {"name": "l" * 64}}, "spec.model.name"),
        ("pool name with underscore", {"pool": "Bad_Pool"}, "spec.pool"),
        ("tier with dash", {"tier": "p-0"}, "spec.tier"),
        ("tier empty", {"tier": ""}, "spec.tier"),
        ("tier too long", {"tier": "P" * 17}, "spec.tier"),
        ("unknown precision", {"precision": "fp3"}, "spec.precision"),
        ("unknown kv cache dtype", {"kvCacheDtype": "int3"}, "spec.kvCacheDtype"),
        ("unknown engine", {"engine": {"type": "tgi"}}, "spec.engine.type"),
        ("empty image", {"engine": {"image": ""}}, "spec.engine.image"),
        ("image with a space", {"engine": {"image": "vllm/vllm openai:latest"}}, "spec.engine.image"),
        ("extra arg too long", {"engine": {"extraArgs": ["x" * 5000]}}, "spec.engine.extraArgs[0]"),
        (
            "hugging face id with spaces",
            {"weights": {"huggingFace": {"id": "not a/valid id"}}},
            "spec.weights.huggingFace.id",
        ),
        (
            "token secret name uppercase",
            {
                "weights": {
                    "huggingFace": {"id": "meta-llama/Llama-3.1-8B", "tokenSecretRef": {"name": "HF_Token"}}
                }
            },
            "spec.weights.huggingFace.tokenSecretRef.name",
        ),
        (
            "token secret key with space",
            {
                "weights": {
                    "huggingFace": {
                        "id": "meta-llama/Llama-3.1-8B",
                        "tokenSecretRef": {"name": "hf", "key": "a key"},
                    }
                }
            },
            "spec.weights.huggingFace.tokenSecretRef.key",
        ),
        (
            "revision with space",
            {"weights": {"huggingFace": {"id": "meta-llama/Llama-3.1-8B", "revision": "main branch"}}},
            "spec.weights.huggingFace.revision",
        ),
        ("pvc claim uppercase", {"weights": {"pvc": {"claimName": "Weights"}}}, "spec.weights.pvc.claimName"),
        (
            "pvc relative path",
            {"weights": {"pvc": {"claimName": "weights", "path": "models/llama"}}},
            "spec.weights.pvc.path",
        ),
        ("unknown field in traffic", {"traffic": {"qps": 5}}, 'unknown field "spec.traffic.qps"'),
        ("unknown field in engine", {"engine": {"gpus": 2}}, 'unknown field "spec.engine.gpus"'),
        (
            "unknown field in autoscaling",
            {"autoscaling": {"enabled": True, "panic": True}},
            'unknown field "spec.autoscaling.panic"',
        ),
    ]
    return [model(name, refused, **spec) for name, spec, refused in names]


def _bad_structure() -> list[Case]:
    cases = [
        model("no model", "set exactly one of model.name", model={"name": DROP}),
        model(
            "pool and pools", "set exactly one of pool (one pool) and pools", pools=[{"name": ASCEND_POOL}]
        ),
        model("pools empty and no pool", "set exactly one of pool (one pool) and pools", pool=DROP, pools=[]),
        model(
            "pools twice the same",
            "Duplicate value",
            pool=DROP,
            pools=[{"name": NVIDIA_POOL}, {"name": NVIDIA_POOL}],
        ),
        model(
            "pools with autoscaling",
            "autoscaling runs on models of one pool",
            pool=DROP,
            pools=[{"name": NVIDIA_POOL}, {"name": ASCEND_POOL}],
            autoscaling={"enabled": True},
        ),
        model(
            "min above max",
            "scaling.minReplicas must be at most scaling.maxReplicas",
            scaling={"minReplicas": 5, "maxReplicas": 2},
        ),
        model(
            "replicas above max",
            "replicas exceeds scaling.maxReplicas",
            replicas=9,
            scaling={"maxReplicas": 4},
        ),
        model(
            "both weight sources",
            "set exactly one of weights.huggingFace and weights.pvc",
            weights={"huggingFace": {"id": "a/b"}, "pvc": {"claimName": "w"}},
        ),
        model("no weight source", "set exactly one of weights.huggingFace and weights.pvc", weights={}),
        custom(
            "architecture without served name", "model.servedName is required", model={"servedName": DROP}
        ),
        custom(
            "architecture without weights",
            "weights is required with an explicit model.architecture",
            weights=DROP,
        ),
        custom("architecture and name", "set exactly one of model.name", model={"name": "llama-3.1-8b"}),
        custom(
            "maxModelLen beyond architecture",
            "maxModelLen exceeds the model's maxPositionEmbeddings",
            maxModelLen=16384,
        ),
        arch("kv heads do not divide", "architecture.kvHeads must divide", kvHeads=5),
        arch("more kv heads than heads", "architecture.kvHeads must divide", kvHeads=32),
        arch("zero params", "spec.model.architecture.params", params=0),
        arch("params beyond any model", "spec.model.architecture.params", params=10**15),
        arch("zero layers", "spec.model.architecture.layers", layers=0),
        arch("ten thousand layers", "spec.model.architecture.layers", layers=10_000),
        arch("zero head dim", "spec.model.architecture.headDim", headDim=0),
        arch(
            "sliding window layers beyond layers",
            "slidingWindowLayers cannot exceed",
            slidingWindow=1024,
            slidingWindowLayers=64,
        ),
        arch(
            "experts per token above experts",
            "moe.expertsPerToken cannot exceed moe.experts",
            moe={"experts": 8, "expertsPerToken": 16, "activeParams": 100},
        ),
        arch(
            "active params above params",
            "moe.activeParams cannot exceed",
            moe={"experts": 8, "expertsPerToken": 2, "activeParams": 10**10},
        ),
        arch("zero context", "spec.model.architecture.maxPositionEmbeddings", maxPositionEmbeddings=0),
        arch(
            "quantization of 32 bits",
            "spec.model.architecture.quantization.weightBits",
            quantization={"method": "awq", "weightBits": 32},
        ),
        arch(
            "unknown quantization",
            "spec.model.architecture.quantization.method",
            quantization={"method": "q2k", "weightBits": 2},
        ),
        model(
            "inference pool without a route",
            "routing.inferencePool needs routing.parentRefs",
            routing={"inferencePool": {}},
        ),
        model(
            "endpoint picker failure mode unknown",
            "spec.routing.inferencePool.endpointPicker.failureMode",
            routing={
                "parentRefs": [{"name": "g"}],
                "inferencePool": {"endpointPicker": {"failureMode": "Open"}},
            },
        ),
        model(
            "endpoint picker port zero",
            "spec.routing.inferencePool.endpointPicker.port",
            routing={"parentRefs": [{"name": "g"}], "inferencePool": {"endpointPicker": {"port": 0}}},
        ),
        Case("m-spec-a-string", "ModelDeployment", "llama please", "spec"),
    ]
    return cases


def _answered_models() -> list[Case]:
    """Schema-valid ModelDeployments the operator cannot serve: each gets a condition."""
    ready, placed = "Ready", "Placed"
    return [
        model(
            "unknown model",
            condition=(ready, "UnknownModel", "no-such-model"),
            model={"name": "no-such-model"},
        ),
        model("missing pool", condition=(ready, "PoolNotFound", "no-such-pool"), pool="no-such-pool"),
        model("pool that does not parse", condition=(ready, "PoolInvalid", INVALID_POOL), pool=INVALID_POOL),
        model("unknown tier", condition=(ready, "UnknownTier", "P9"), tier="P9"),
        model(
            "context too long", condition=(ready, "ContextTooLong", "spec.maxModelLen"), maxModelLen=1_000_000
        ),
        model(
            "fp8 kv cache on ascend",
            condition=(ready, "UnsupportedPrecision", "fp8"),
            pool=ASCEND_POOL,
            kvCacheDtype="fp8",
        ),
        model(
            # Two whole nodes would hold it; a forced narrower size keeps it on one.
            "405b in bf16 on h100 at tensor parallel 4",
            condition=(ready, "DoesNotFit", "llama-3.1-405b"),
            model={"name": "llama-3.1-405b"},
            engine={"tensorParallel": 4},
        ),
        model(
            "forced tensor parallel 16",
            condition=(ready, "DoesNotFit", "tensor"),
            engine={"tensorParallel": 16},
        ),
        model(
            "forced tensor parallel 3",
            condition=(ready, "DoesNotFit", "tensor"),
            engine={"tensorParallel": 3},
        ),
        model(
            "a million qps at a trickle per instance",
            condition=(ready, "OutOfRange", "spec.traffic.peakQps"),
            traffic={"peakQps": 1_000_000, "qpsPerInstance": 1e-300},
        ),
        custom(
            "odd architecture too big for a node",
            condition=(ready, "DoesNotFit", "custom"),
            model={"architecture": {"params": 10**13}},
        ),
        model(
            "every allowed pool missing",
            condition=(ready, "PoolSkipped", "no-such-pool-a"),
            pool=DROP,
            pools=[{"name": "no-such-pool-a"}, {"name": "no-such-pool-b"}],
        ),
        model(
            "allowed pool does not parse",
            condition=(ready, "PoolInvalid", INVALID_POOL),
            pool=DROP,
            pools=[{"name": INVALID_POOL}],
        ),
        model("zero quota", condition=(placed, "QuotaExceeded", "team"), pool=QUOTA_POOL),
        model("cpu-only pool", condition=(placed, "InsufficientCapacity", CPU_POOL), pool=CPU_POOL),
    ]


def _bad_pools() -> list[Case]:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    cases = [
        pool("unknown vendor", "spec.vendor", vendor="amd"),
        pool("unknown accelerator", 'spec.accelerator: Unsupported value: "MI300X"', accelerator="MI300X"),
        pool("ascend chip on nvidia", "accelerator does not belong to vendor", accelerator="Ascend910B"),
        pool("zero per node", "spec.acceleratorsPerNode", acceleratorsPerNode=0),
        pool("seventeen per node", "spec.acceleratorsPerNode", acceleratorsPerNode=17),
        pool("per node a word", "spec.acceleratorsPerNode", acceleratorsPerNode="eight"),
        pool(
            "selector key with space",
            "nodeSelector: every key must be a valid label key",
            nodeSelector={"gpu type": "nvidia"},
        ),
        pool(
            "selector key with bang",
            "nodeSelector: every key must be a valid label key",
            nodeSelector={"gpu!": "nvidia"},
        ),
        pool(
            "selector key name too long",
            "nodeSelector: every key must be a valid label key",
            nodeSelector={"g" * 64: "x"},
        ),
        pool(
            "selector key uppercase prefix",
            "nodeSelector: every key must be a valid label key",
            nodeSelector={"Example.COM/gpu": "x"},
        ),
        pool(
            "selector key prefix too long",
            "nodeSelector: every key must be a valid label key",
            nodeSelector={"a" * 254 + "/gpu": "x"},
        ),
        pool(
            "selector key empty name",
            "nodeSelector: every key must be a valid label key",
            nodeSelector={"example.com/": "x"},
        ),
        pool("selector value with space", "spec.nodeSelector.gpu", nodeSelector={"gpu": "nvidia h100"}),
        pool("selector value too long", "spec.nodeSelector.gpu", nodeSelector={"gpu": "v" * 64}),
        pool("selector value leading dash", "spec.nodeSelector.gpu", nodeSelector={"gpu": "-h100"}),
        pool("selector value a number", "spec.nodeSelector.gpu", nodeSelector={"gpu": 100}),
        pool(
            "selector with forty labels", "spec.nodeSelector", nodeSelector={f"l{i}": "x" for i in range(40)}
        ),
        pool(
            "toleration exists with value",
            "value must be empty when operator is Exists",
            tolerations=[{**toleration, "value": "present"}],
        ),
        pool(
            "toleration equal without key",
            "operator must be Exists when key is empty",
            tolerations=[{"operator": "Equal", "value": "x"}],
        ),
        pool("toleration empty", "operator must be Exists when key is empty", tolerations=[{}]),
        pool(
            "toleration unknown operator",
            "spec.tolerations[0].operator",
            tolerations=[{**toleration, "operator": "Maybe"}],
        ),
        pool(
            "toleration unknown effect",
            "spec.tolerations[0].effect",
            tolerations=[{**toleration, "effect": "Sometimes"}],
        ),
        pool(
            "toleration seconds without noexecute",
            "effect must be NoExecute when tolerationSeconds is set",
            tolerations=[{**toleration, "tolerationSeconds": 30}],
        ),
        pool(
            "toleration key with space",
            "spec.tolerations[0].key",
            tolerations=[{**toleration, "key": "nvidia gpu"}],
        ),
        pool(
            "toleration value too long",
            "spec.tolerations[0].value",
            tolerations=[{"key": "k", "operator": "Equal", "value": "v" * 64}],
        ),
        pool("no tiers", "spec.tiers", tiers=[]),
        pool("nine tiers", "spec.tiers", tiers=[{"name": f"T{i}", "priority": i} for i in range(9)]),
        pool("tier name with space", "spec.tiers[0].name", tiers=[{"name": "P 0", "priority": 1}]),
        pool(
            "tier priority above a billion",
            "spec.tiers[0].priority",
            tiers=[{"name": "P0", "priority": 2_000_000_000}],
        ),
        pool(
            "tier reserve 150",
            "spec.tiers[0].reservedPercent",
            tiers=[{"name": "P0", "priority": 1, "reservedPercent": 150}],
        ),
        pool(
            "tier borrowing negative",
            "spec.tiers[0].borrowingLimitPercent",
            tiers=[{"name": "P0", "priority": 1, "borrowingLimitPercent": -1}],
        ),
        pool("tier without priority", "spec.tiers[0].priority", tiers=[{"name": "P0"}]),
        pool("negative price", "spec.pricePerAcceleratorHour", pricePerAcceleratorHour=-1),
        pool("price 1e300", "spec.pricePerAcceleratorHour", pricePerAcceleratorHour=1e300),
        pool("prometheus ftp", "spec.prometheus.url", prometheus={"url": "ftp://prometheus"}),
        pool(
            "prometheus two auth methods",
            "give at most one of basicAuth and bearerToken",
            prometheus={
                "url": "http://p:9090",
                "basicAuth": {"secretName": "a"},
                "bearerToken": {"secretName": "b"},
            },
        ),
        pool(
            "prometheus tls over http",
            "prometheus.tls applies to an https:// url",
            prometheus={"url": "http://p:9090", "tls": {"insecureSkipVerify": True}},
        ),
        pool(
            "tenant without namespaces",
            "a tenant needs namespaces or a namespaceSelector",
            tenants=[{"name": "team", "maxAccelerators": 8}],
        ),
        pool(
            "tenant without limits",
            "a tenant needs maxAccelerators or maxAcceleratorMemory",
            tenants=[{"name": "team", "namespaces": ["a"]}],
        ),
        pool(
            "tenant negative quota",
            "spec.tenants[0].maxAccelerators",
            tenants=[{"name": "team", "namespaces": ["a"], "maxAccelerators": -1}],
        ),
        pool(
            "tenant memory a word",
            "spec.tenants[0].maxAcceleratorMemory",
            tenants=[{"name": "team", "namespaces": ["a"], "maxAcceleratorMemory": "lots"}],
        ),
        pool(
            "tenants twice the same",
            "Duplicate value",
            tenants=[
                {"name": "team", "namespaces": ["a"], "maxAccelerators": 1},
                {"name": "team", "namespaces": ["b"], "maxAccelerators": 1},
            ],
        ),
        pool(
            "tenant namespace uppercase",
            "spec.tenants[0].namespaces[0]",
            tenants=[{"name": "team", "namespaces": ["Team-A"], "maxAccelerators": 1}],
        ),
        pool(
            "accelerator resource without a domain",
            "spec.acceleratorResource",
            acceleratorResource="ascend-1980",
        ),
        pool(
            "accelerator resource of kubernetes",
            "acceleratorResource: the kubernetes.io domain",
            acceleratorResource="kubernetes.io/gpu",
        ),
        pool("unknown field", 'unknown field "spec.gpus"', gpus=8),
        Case("bad-pool-" + "n" * 240, "InferencePool", POOL_BASE, "a pool's name has 228 characters at most"),
    ]
    answered = [
        Case(
            CPU_POOL,
            "InferencePool",
            {**POOL_BASE, "nodeSelector": {"node.kubernetes.io/instance-type": "simulated-cpu"}},
            condition=("Ready", "NoAcceleratorResource", "nvidia.com/gpu"),
        ),
        pool("selects no node", condition=("Ready", "NoNodesMatch", "spec.nodeSelector")),
        Case(
            INVALID_POOL,
            "InferencePool",
            _merge(
                POOL_BASE,
                {
                    "tenants": [
                        {"name": "team-a", "namespaces": ["shared"], "maxAccelerators": 8},
                        {"name": "team-b", "namespaces": ["shared"], "maxAccelerators": 8},
                    ]
                },
            ),
            condition=("Ready", "InvalidSpec", "namespace shared is listed by tenants team-a and team-b"),
        ),
        Case(
            QUOTA_POOL,
            "InferencePool",
            _merge(
                {**POOL_BASE, "nodeSelector": {"gpu-type": "nvidia"}},
                {
                    "tolerations": [toleration],
                    "tenants": [{"name": "team", "namespaces": [NAMESPACE], "maxAccelerators": 0}],
                },
            ),
            condition=("Ready", "NodesFound", "accelerator"),
        ),
    ]
    return cases + answered


def all_cases() -> list[Case]:
    cases = (
        _yaml_cases()
        + _numeric_bounds()
        + _wrong_types()
        + _bad_names()
        + _bad_structure()
        + _answered_models()
        + _bad_pools()
    )
    names = [(c.kind, c.name) for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"case names must be distinct: {duplicates}"
    return cases


CASES = all_cases()
REFUSED = [c for c in CASES if c.refused is not None]
ANSWERED = [c for c in CASES if c.condition is not None]
