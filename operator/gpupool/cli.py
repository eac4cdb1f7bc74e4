"""The `gpupool` command: capacity plans, rendering, CRDs, and the operator itself.

Bad input ends in one line on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from gpupool import __version__
from gpupool.api.conditions import ConditionType, find_condition, now_rfc3339
from gpupool.api.crd import all_crds
from gpupool.api.v1alpha1 import DEFAULT_MAX_MODEL_LEN, InferencePool, ModelDeployment
from gpupool.catalog.accelerators import ACCELERATORS, get_accelerator
from gpupool.catalog.models import MODELS, architecture_from_hf_config, get_model
from gpupool.catalog.types import Architecture, KVCacheDtype, Precision
from gpupool.controller.leader import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    LeaderElectionSettings,
    default_namespace,
)
from gpupool.manifests import load_documents, parse_object
from gpupool.services.modeldeployment import PoolContext, decide
from gpupool.simulate.cli import register as register_simulate
from gpupool.sizing import Plan, SizingRequest, plan_deployment
from gpupool.sizing.request import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_HEADROOM,
    DEFAULT_INTER_NODE_GBPS,
)

EXIT_USAGE = 2


class CliError(Exception):
    """A one-line message for the user."""


def _fail(message: str) -> NoReturn:
    print(f"gpupool: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


# --------------------------------------------------------------------------------------------------
# plan


def _architecture(model: str) -> tuple[str, Architecture]:
    path = Path(model)
    if model.endswith(".json") or path.is_file():
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CliError(f"cannot read {model}: {err}") from err
        try:
            return path.name, architecture_from_hf_config(config)
        except (KeyError, ValueError, TypeError) as err:
            raise CliError(f"{model} is not a usable Hugging Face config.json: {err}") from err
    entry = get_model(model)
    return entry.name, entry.architecture


def _prices(values: Sequence[str]) -> dict[str, float]:
    prices: dict[str, float] = {}
    for item in values:
        name, sep, price = item.partition("=")
        if not sep:
            raise CliError(f"--price takes ACCELERATOR=PRICE, got {item!r}")
        try:
            prices[get_accelerator(name).name] = float(price)
        except ValueError as err:
            raise CliError(f"--price {item!r}: {err}") from err
    return prices


def plan_command(args: argparse.Namespace) -> int:
    model_name, arch = _architecture(args.model)
    prices = _prices(args.price)
    plans: list[Plan] = []
    for name in args.accelerator:
        accelerator = get_accelerator(name)
        request = SizingRequest(
            precision=Precision(args.precision),
            max_model_len=args.max_model_len,
            concurrency=args.concurrency,
            accelerators_per_node=args.accelerators_per_node,
            peak_qps=args.peak_qps,
            qps_per_instance=args.qps_per_instance,
            headroom=args.headroom,
            price_per_accelerator_hour=prices.get(accelerator.name),
            gpu_memory_utilization=args.gpu_memory_utilization,
            kv_cache_dtype=KVCacheDtype(args.kv_cache_dtype),
            tensor_parallel=args.tensor_parallel,
            data_parallel=args.data_parallel,
            max_num_batched_tokens=args.max_num_batched_tokens,
            max_num_seqs=args.max_num_seqs,
            inter_node_bytes_per_second=args.inter_node_gbps * 10**9 // 8,
            max_nodes_per_instance=args.max_nodes_per_instance,
        )
        try:
            plans.append(plan_deployment(arch, accelerator, request, model_name=model_name))
        except ValueError as err:
            raise CliError(f"{accelerator.name}: {err}") from err
    if args.output == "json":
        print(json.dumps([p.to_wire() for p in plans], indent=2))
    else:
        print(format_plan_table(model_name, args, plans))
    return 0


GIB = 1024**3


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


def format_plan_table(model: str, args: argparse.Namespace, plans: list[Plan]) -> str:
    rows: list[tuple[str, list[str]]] = [
        ("fits", ["yes" if p.fits else "NO" for p in plans]),
        ("tensor parallel", [str(p.tensor_parallel or "-") for p in plans]),
        ("data parallel", [str(p.data_parallel or "-") for p in plans]),
        ("pipeline parallel", [str(p.pipeline_parallel or "-") for p in plans]),
        ("nodes / instance", [str(p.nodes_per_instance) for p in plans]),
        ("across nodes", [p.across_nodes.value if p.across_nodes else "-" for p in plans]),
        ("accelerators / instance", [str(p.accelerators_per_instance or "-") for p in plans]),
        ("instances", [str(p.instances) if p.fits else "-" for p in plans]),
        ("accelerators", [str(p.accelerators) if p.fits else "-" for p in plans]),
        ("nodes", [str(p.nodes) if p.fits else "-" for p in plans]),
        (
            "qps / instance",
            [
                f"{p.qps_per_instance:.2f} ({p.qps_per_instance_source})" if p.qps_per_instance else "-"
                for p in plans
            ],
        ),
        (
            "full-length sequences",
            [str(p.max_concurrent_sequences) if p.fits else "-" for p in plans],
        ),
    ]
    mem_rows = [
        ("weights GiB / acc.", "weights_bytes"),
        ("activations GiB / acc.", "activations_bytes"),
        ("runtime GiB / acc.", "runtime_overhead_bytes"),
        ("KV cache GiB / acc.", "kv_cache_bytes"),
        ("usable GiB / acc.", "usable_bytes"),
    ]
    for label, attr in mem_rows:
        rows.append(
            (
                label,
                [
                    _gib(getattr(p.memory_per_accelerator, attr)) if p.memory_per_accelerator else "-"
                    for p in plans
                ],
            )
        )
    rows.append(
        (
            "cost / hour",
            [f"{p.cost_per_hour:.2f}" if p.cost_per_hour is not None else "-" for p in plans],
        )
    )
    # What a million requests cost at the planned instances' full throughput.
    rows.append(
        (
            "cost / 1M requests",
            [
                f"{p.cost_per_hour / (p.instances * p.qps_per_instance * 3600) * 1e6:.2f}"
                if p.cost_per_hour is not None and p.qps_per_instance and p.instances
                else "-"
                for p in plans
            ],
        )
    )
    header = [f"{model} {args.precision}, {args.peak_qps:g} QPS peak, max length {args.max_model_len}"]
    names = [p.accelerator for p in plans]
    width = max(len(r[0]) for r in rows) + 2
    cols = [max(len(n), *(len(r[1][i]) for r in rows)) + 2 for i, n in enumerate(names)]
    lines = [
        *header,
        "".ljust(width) + "".join(n.rjust(c) for n, c in zip(names, cols, strict=True)),
    ]
    for label, values in rows:
        lines.append(label.ljust(width) + "".join(v.rjust(c) for v, c in zip(values, cols, strict=True)))
    priced = [p for p in plans if p.fits and p.cost_per_hour is not None]
    if len(priced) > 1:
        best = min(priced, key=lambda p: (p.cost_per_hour or 0.0, p.accelerator))
        others = ", ".join(
            f"{p.accelerator} {(p.cost_per_hour or 0.0) / (best.cost_per_hour or 1.0):.2f}x"
            for p in priced
            if p is not best
        )
        lines.append(
            f"cheapest for {args.peak_qps:g} QPS: {best.accelerator} at {best.cost_per_hour:.2f} / hour "
            f"({others})"
        )
    for p in plans:
        lines.append(f"{p.accelerator}: {p.reason}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# render


def render_command(args: argparse.Namespace) -> int:
    docs = load_documents(args.file) + (load_documents(args.pool) if args.pool else [])
    models = [parse_object(ModelDeployment, d) for d in docs if d.get("kind") == "ModelDeployment"]
    pools = {
        p.metadata.get("name"): p
        for p in (parse_object(InferencePool, d) for d in docs if d.get("kind") == "InferencePool")
    }
    if not models:
        raise CliError(f"{args.file} holds no ModelDeployment")
    out: list[dict[str, Any]] = []
    for md in models:
        md.metadata.setdefault("namespace", args.namespace)
        out.extend(render_model(md, pools))
    print(yaml.dump_all(out, Dumper=_BlockDumper, sort_keys=False), end="")
    return 0


def render_model(md: ModelDeployment, pools: dict[Any, InferencePool]) -> list[dict[str, Any]]:
    """What the operator would apply for `md`, through the operator's own `decide`, on pools that
    run nothing else: every instance asked for has room (on several pools, the preferred pool that
    can serve the model takes them all; overflow depends on the cluster's state)."""
    name = md.metadata.get("name")
    wanted = md.spec.pool_names()
    missing = [pool for pool in wanted if pool not in pools]
    if len(missing) == len(wanted):
        if md.spec.pools:
            raise CliError(
                f"ModelDeployment {name} uses pools {', '.join(missing)}; "
                "pass them with --pool (one YAML file may hold several)"
            )
        raise CliError(f"ModelDeployment {name} uses pool {md.spec.pool!r}; pass it with --pool")
    contexts = {pool: PoolContext(pools[pool]) if pool in pools else None for pool in wanted}
    try:
        outcome = decide(md, contexts, {}, now_rfc3339())
    except ValueError as err:
        raise CliError(f"ModelDeployment {name}: {err}") from err
    if not outcome.apply:
        why = find_condition(outcome.status.conditions, ConditionType.DEGRADED)
        raise CliError(
            f"ModelDeployment {name}: {why.reason}: {why.message}"
            if why is not None
            else f"ModelDeployment {name} cannot be served"
        )
    return outcome.objects


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (config files inside ConfigMaps) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


# --------------------------------------------------------------------------------------------------
# crds and run


def crds_command(args: argparse.Namespace) -> int:
    crds = all_crds()
    if args.output_dir:
        directory = Path(args.output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for crd in crds:
            target = directory / f"{crd['metadata']['name']}.yaml"
            target.write_text(crd_yaml(crd))
            print(f"wrote {target}")
    else:
        print("---\n".join(crd_yaml(c) for c in crds), end="")
    return 0


def crd_yaml(crd: dict[str, Any]) -> str:
    header = "# Generated by `gpupool crds` from operator/gpupool/api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


def without_official_client() -> None:
    """Make `import kubernetes` fail in this process, before kopf is imported.

    The operator has its own REST client (gpupool.controller.apiclient) and logs kopf in with it.
    kopf imports the official `kubernetes` package whenever it is installed (for type checks of
    that package's models and a login the operator replaces), and that import alone holds 35 MiB
    for the life of the process. A package already imported is left alone.
    """
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]


def run_command(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gpupool.controller.config import OperatorConfig

    flags = {name: getattr(args, name) for name in OperatorConfig.model_fields if hasattr(args, name)}
    try:
        config = OperatorConfig.from_flags(**flags)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise CliError(f"invalid operator settings (flags or GPUPOOL_* variables): {problems}") from err
    without_official_client()
    from gpupool.controller.runner import run_operator

    leader_election = None
    if args.leader_elect:
        try:
            leader_election = LeaderElectionSettings(
                namespace=args.leader_election_namespace or default_namespace(),
                name=args.leader_election_id,
                lease_duration=args.leader_election_lease_duration,
                renew_deadline=args.leader_election_renew_deadline,
                retry_period=args.leader_election_retry_period,
                **({"identity": args.leader_election_identity} if args.leader_election_identity else {}),
            )
        except ValueError as err:
            raise CliError(str(err)) from err
    run_operator(config, leader_election)
    return 0


# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpupool", description="Managed inference pools on GPUs and Ascend NPUs."
    )
    parser.add_argument("--version", action="version", version=f"gpupool {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser(
        "plan",
        help="capacity plan for a model on one or more accelerators",
        description="Size a model: tensor parallelism, instances, nodes, memory and cost, side by side.",
        epilog=f"models: {', '.join(sorted(MODELS))}\naccelerators: {', '.join(sorted(ACCELERATORS))}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("--model", required=True, help="catalog name or a Hugging Face config.json path")
    plan.add_argument("--accelerator", action="append", required=True, help="accelerator (repeat to compare)")
    plan.add_argument("--precision", default="bf16", choices=[p.value for p in Precision])
    plan.add_argument("--peak-qps", type=float, required=True)
    plan.add_argument("--qps-per-instance", type=float, default=None, help="measured QPS of one instance")
    plan.add_argument("--max-model-len", type=int, default=DEFAULT_MAX_MODEL_LEN)
    plan.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="full-length sequences to hold per instance",
    )
    plan.add_argument(
        "--headroom",
        type=float,
        default=DEFAULT_HEADROOM,
        help="capacity above peak, as a fraction",
    )
    plan.add_argument("--accelerators-per-node", type=int, default=8)
    plan.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        help="fraction of each accelerator's memory vLLM may use (vLLM's default 0.9)",
    )
    plan.add_argument("--kv-cache-dtype", default="auto", choices=[k.value for k in KVCacheDtype])
    plan.add_argument(
        "--tensor-parallel",
        type=int,
        default=None,
        metavar="N",
        help="force this tensor-parallel size (the plan says why when it cannot work)",
    )
    plan.add_argument(
        "--data-parallel",
        type=int,
        default=None,
        metavar="N",
        help="force N data-parallel attention ranks, experts over all of them (MoE models); 1: TP alone",
    )
    plan.add_argument(
        "--max-num-batched-tokens",
        type=int,
        default=None,
        help="vLLM's --max-num-batched-tokens (default: vLLM's for the accelerator)",
    )
    plan.add_argument(
        "--max-num-seqs", type=int, default=None, help="vLLM's --max-num-seqs (default: vLLM's)"
    )
    plan.add_argument(
        "--inter-node-gbps",
        type=int,
        default=DEFAULT_INTER_NODE_GBPS,
        metavar="GBPS",
        help=f"link between the nodes of a multi-node instance, in Gb/s ({DEFAULT_INTER_NODE_GBPS})",
    )
    plan.add_argument(
        "--max-nodes-per-instance",
        type=int,
        default=None,
        metavar="N",
        help="nodes one multi-node instance may span (default: not limited)",
    )
    plan.add_argument("--price", action="append", default=[], metavar="ACC=PRICE", help="hourly price")
    plan.add_argument("-o", "--output", choices=["table", "json"], default="table")
    plan.set_defaults(func=plan_command)

    render = sub.add_parser("render", help="the manifests the operator would apply for a ModelDeployment")
    render.add_argument(
        "-f",
        "--file",
        required=True,
        help="ModelDeployment YAML (may also hold the pool); - reads stdin",
    )
    render.add_argument("--pool", help="InferencePool YAML")
    render.add_argument("-n", "--namespace", default="default")
    render.set_defaults(func=render_command)

    crds = sub.add_parser("crds", help="print the generated CustomResourceDefinitions")
    crds.add_argument("--output-dir", help="write one file per CRD into this folder")
    crds.set_defaults(func=crds_command)

    run = sub.add_parser(
        "run",
        help="run the operator",
        description="Run the operator. Each flag overrides its GPUPOOL_* variable (docs/reliability.md).",
    )
    run.add_argument("--kubeconfig", default=None)
    run.add_argument("--health-address", default=None, help="host:port of /healthz (0.0.0.0:8080)")
    run.add_argument("--metrics-port", type=int, default=None, help="port of /metrics (9090)")
    run.add_argument("--metrics-address", default=None, help="address of /metrics (0.0.0.0)")
    run.add_argument("-v", "--verbose", action="store_true", default=None)
    run.add_argument(
        "--log-format", choices=["text", "json"], default=None, help="json: one object per line (text)"
    )
    run.add_argument("--workers", type=int, default=None, help="worker threads of the work queue (8)")
    run.add_argument("--resync-seconds", type=float, default=None, help="seconds between resyncs (60)")
    _add_leader_election_flags(run)
    run.set_defaults(func=run_command)

    register_simulate(sub)
    return parser


def _add_leader_election_flags(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group(
        "leader election",
        "Several replicas of the operator take turns through a coordination.k8s.io/v1 Lease: one "
        "leads, the others stand by. Off by default for a single process; the chart turns it on.",
    )
    group.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="act only while holding the Lease; exit when it is lost (default: off)",
    )
    group.add_argument(
        "--leader-election-namespace",
        default=None,
        help="namespace of the Lease (default: $GPUPOOL_NAMESPACE, else the pod's namespace, else default)",
    )
    group.add_argument("--leader-election-id", default=DEFAULT_LEASE_NAME, help="name of the Lease")
    group.add_argument(
        "--leader-election-identity",
        default=None,
        help="holder identity (default: $POD_NAME, else hostname-pid)",
    )
    group.add_argument(
        "--leader-election-lease-duration",
        type=float,
        default=DEFAULT_LEASE_DURATION,
        metavar="SECONDS",
        help="a standby takes over once the Lease has not been renewed for this long (default: %(default)g)",
    )
    group.add_argument(
        "--leader-election-renew-deadline",
        type=float,
        default=DEFAULT_RENEW_DEADLINE,
        metavar="SECONDS",
        help="the leader exits when it has not renewed the Lease for this long (default: %(default)g)",
    )
    group.add_argument(
        "--leader-election-retry-period",
        type=float,
        default=DEFAULT_RETRY_PERIOD,
        metavar="SECONDS",
        help="how often the leader renews and a standby retries (default: %(default)g)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CliError as err:
        _fail(str(err))
    except ValueError as err:  # unknown model or accelerator, invalid numbers
        _fail(str(err).splitlines()[0])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
