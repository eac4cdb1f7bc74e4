"""`gpupool simulate`: replay a traffic trace through a planned model under an autoscaling policy.

Bad input raises ValueError with a one-line message; `gpupool.cli.main` prints it and exits 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gpupool.api.v1alpha1 import InferencePool, ModelDeployment
from gpupool.manifests import first_error, load_documents, parse_object
from gpupool.scaling import AutoscalingPolicy
from gpupool.services.modeldeployment import SpecError
from gpupool.simulate.autoscalers import POLICY_NAMES
from gpupool.simulate.report import format_summary, plot, result_document
from gpupool.simulate.scenario import run_scenario, scenario_for
from gpupool.simulate.simulator import Balancer, SimulationConfig
from gpupool.simulate.traces import GENERATORS, Trace, builtin, load_csv


def _trace(spec: str, peak_qps: float, seed: int, rescale: bool) -> Trace:
    """A built-in shape at `peak_qps`, or a CSV file, rescaled to `peak_qps` when `rescale`."""
    if spec in GENERATORS:
        return builtin(spec, peak_qps, seed)
    if not Path(spec).exists():
        raise ValueError(f"--trace {spec!r} is neither a built-in trace ({', '.join(GENERATORS)}) nor a file")
    trace = load_csv(spec)
    if rescale:
        if trace.peak <= 0:
            raise ValueError(f"--peak-qps cannot rescale {spec}: its QPS is 0 throughout")
        trace = trace.scaled(peak_qps / trace.peak)
    return trace


def _policy(path: str | None) -> AutoscalingPolicy:
    if path is None:
        return AutoscalingPolicy(enabled=True)
    docs = load_documents(path)
    if len(docs) != 1:
        raise ValueError(f"{path} must hold one AutoscalingPolicy mapping (spec.autoscaling's fields)")
    try:
        return AutoscalingPolicy.model_validate({**docs[0], "enabled": True})
    except ValidationError as err:
        raise ValueError(f"{path}: {first_error(err, 'policy')}") from err


def simulate_command(args: argparse.Namespace) -> int:
    docs = load_documents(args.file) + (load_documents(args.pool) if args.pool else [])
    models = [d for d in docs if d.get("kind") == "ModelDeployment"]
    if len(models) != 1:
        raise ValueError(f"{args.file} must hold exactly one ModelDeployment, found {len(models)}")
    md = parse_object(ModelDeployment, models[0])
    md.metadata.setdefault("namespace", "default")
    pools = [parse_object(InferencePool, d) for d in docs if d.get("kind") == "InferencePool"]
    pool = next((p for p in pools if p.metadata.get("name") == md.spec.pool), None)
    if pool is None:
        raise ValueError(f"ModelDeployment uses pool {md.spec.pool!r}; pass it with --pool")
    try:
        scenario = scenario_for(md, pool)
    except SpecError as err:
        raise ValueError(f"{err.reason.value}: {err.message}") from err
    peak = args.peak_qps if args.peak_qps is not None else md.spec.traffic.peak_qps
    if peak <= 0:
        raise ValueError("the peak QPS must be positive (spec.traffic.peakQps or --peak-qps)")
    trace = _trace(args.trace, peak, args.seed, rescale=args.peak_qps is not None)
    try:
        config = SimulationConfig(
            seed=args.seed,
            balancer=Balancer(args.balancer),
            capacity_error=args.capacity_error,
            load_time_spread=args.load_time_spread,
            provisioning_delay_seconds=args.provisioning_delay,
            retry=not args.no_retry,
        )
    except ValueError as err:
        raise ValueError(f"simulation settings: {err}") from err
    result = run_scenario(scenario, trace, args.policy, policy=_policy(args.policy_file), config=config)
    if args.plot:
        plot(result, args.plot, scenario.label, scenario.capacity_per_instance * config.capacity_error)
    if args.output == "json":
        print(json.dumps(result_document(scenario.label, trace, result), indent=2))
    else:
        print(format_summary(scenario.label, trace, result))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def register(subparsers: Any) -> None:
    """Add `simulate` to the `gpupool` command."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay a traffic trace through a planned model under an autoscaling policy",
        description="Plan the model as the operator does, replay a trace through a simulated engine "
        "(queueing, model load time, time-outs) under an autoscaling policy, and report "
        "accelerator-hours, SLO attainment, p99 time to first token, scale events and reaction time.",
        epilog=f"built-in traces: {', '.join(GENERATORS)}; policies: {', '.join(POLICY_NAMES)}",
    )
    parser.add_argument("-f", "--file", required=True, help="ModelDeployment YAML (may also hold the pool)")
    parser.add_argument("--pool", help="InferencePool YAML")
    parser.add_argument(
        "--trace", required=True, help=f"a CSV file (seconds, QPS) or one of {', '.join(GENERATORS)}"
    )
    parser.add_argument("--policy", default="default", choices=POLICY_NAMES)
    parser.add_argument(
        "--policy-file", help="YAML with AutoscalingPolicy fields (camelCase) to override the defaults"
    )
    parser.add_argument(
        "--peak-qps",
        type=float,
        help="peak of a built-in trace (default spec.traffic.peakQps); a CSV trace is rescaled to it",
    )
    parser.add_argument(
        "--capacity-error",
        type=float,
        default=1.0,
        help="true capacity of an instance over the plan's estimate (0.7: the plan is 30%% optimistic)",
    )
    parser.add_argument(
        "--balancer",
        choices=[b.value for b in Balancer],
        default=Balancer.LEAST_REQUEST.value,
        help="how requests spread over the pods' queues",
    )
    parser.add_argument(
        "--load-time-spread",
        type=float,
        default=0.2,
        help="each new pod loads in the plan's load time times 1 +- up to this (uniform)",
    )
    parser.add_argument(
        "--provisioning-delay",
        type=float,
        default=0.0,
        help="seconds before a new pod starts loading (a node to provision)",
    )
    parser.add_argument("--no-retry", action="store_true", help="clients do not retry a timed-out request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in traces and the arrivals")
    parser.add_argument("--plot", help="write a PNG of load, instances and latency over time")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.set_defaults(func=simulate_command)
