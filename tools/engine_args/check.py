#!/usr/bin/env python3
"""Every rendered sample through the engines' own parsers (`make check-engine-args`).

Runs in the side environment that holds vLLM and tritonclient (mk/engines.mk), not in gpupool's:
`gpupool render` (the operator's renderer, from gpupool's own environment) writes the manifests of
every ModelDeployment in manifests/samples/ on its pool, plus a few mixture-of-experts layouts the
samples do not reach (expert parallelism, data-parallel attention), and then

- each vLLM container's `vllm serve` arguments go through vLLM's argument parser
  (`vllm.entrypoints.openai.cli_args.make_arg_parser`) and `AsyncEngineArgs.from_cli_args`, and
  the engine arguments must hold the values the command line gave;
- each Triton model repository's `config.pbtxt` goes through Triton's `ModelConfig` protobuf
  (`tritonclient.grpc.model_config_pb2`, `google.protobuf.text_format.Parse`), and its vLLM
  backend's `model.json` through `AsyncEngineArgs(**options)`, which refuses unknown fields.

Parsing needs no accelerator and no model download. Exit status 1 when anything is refused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests" / "samples"

# Layouts no sample reaches, each (name, base sample, model, accelerator of the pool, maxModelLen).
MOE_CASES = (
    # Latent attention on 8 x H200: data-parallel attention with the experts over all ranks.
    ("deepseek-v3-dp-ep", "llama-3.1-8b-vllm-nvidia.yaml", "deepseek-v3", "H200-141GB", 32_768),
    # Mixtral on H100: tensor parallelism alone.
    ("mixtral-8x7b-tp", "llama-3.1-8b-vllm-nvidia.yaml", "mixtral-8x7b", "H100-80GB", 32_768),
    # Groups of nodes (LeaderWorkerSets): DeepSeek-V3 as data parallel x expert parallel over two
    # H100 nodes and over two Atlas 800 A2 nodes; Llama-3.1-405B as pipeline stages over Ray.
    ("deepseek-v3-dp-ep-nodes", "llama-3.1-8b-vllm-nvidia.yaml", "deepseek-v3", "H100-80GB", 8_192),
    ("deepseek-v3-dp-ep-ascend-nodes", "qwen2.5-7b-vllm-ascend.yaml", "deepseek-v3", "Ascend910B", 8_192),
    ("llama-3.1-405b-pp-nodes", "llama-3.1-8b-vllm-nvidia.yaml", "llama-3.1-405b", "H100-80GB", 8_192),
)

# Stand-ins the group pods' shells run instead of the engine, so that a leader's or worker's
# command line is read as the shell expands it: `vllm` writes its arguments out, `ray` succeeds,
# and the leader's count of Ray nodes answers that the whole group has joined.
_STAND_INS = {
    "vllm": 'printf "%s\\0" "$@" > "$GPUPOOL_ARGV"',
    "ray": "exit 0",
    "python3": 'echo "$LWS_GROUP_SIZE"',
}
# What LeaderWorkerSet injects into the second pod of a group of two.
_GROUP_ENV = {"LWS_LEADER_ADDRESS": "llm-0.llm.models", "LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _pools() -> dict[str, Path]:
    pools = {}
    for path in sorted(SAMPLES.glob("pool-*.yaml")):
        for doc in _documents(path.read_text()):
            if doc.get("kind") == "InferencePool":
                pools[doc["metadata"]["name"]] = path
    return pools


def _cases(workdir: Path) -> list[tuple[str, Path, Path]]:
    """(name, ModelDeployment file, pool file) for every sample and every MoE case."""
    pools = _pools()
    cases = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        for doc in _documents(path.read_text()):
            if doc.get("kind") == "ModelDeployment":
                cases.append((path.stem, path, pools[doc["spec"]["pool"]]))
    for name, base, model, accelerator, max_model_len in MOE_CASES:
        (md,) = [d for d in _documents((SAMPLES / base).read_text()) if d.get("kind") == "ModelDeployment"]
        md["metadata"]["name"] = name
        md["spec"]["model"] = {"name": model}
        md["spec"].pop("weights", None)
        md["spec"]["maxModelLen"] = max_model_len
        pool_path = pools[md["spec"]["pool"]]
        (pool,) = [d for d in _documents(pool_path.read_text()) if d.get("kind") == "InferencePool"]
        pool["spec"]["accelerator"] = accelerator
        md_file, pool_file = workdir / f"{name}.yaml", workdir / f"{name}-pool.yaml"
        md_file.write_text(yaml.safe_dump(md))
        pool_file.write_text(yaml.safe_dump(pool))
        cases.append((name, md_file, pool_file))
    return cases


def _render(gpupool: str, md: Path, pool: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [gpupool, "render", "-f", str(md), "--pool", str(pool), "-n", "engine-args"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return _documents(out)


def _answer_for_the_platform() -> None:
    """vLLM's parser builds its config dataclasses for their defaults, and DeviceConfig asks the
    platform for a device type; with no accelerator here none answers, so the CPU platform does.
    Only parsing runs: no engine starts and no device-dependent default is rendered unset."""
    import vllm.platforms
    from vllm.platforms.cpu import CpuPlatform

    vllm.platforms.current_platform = CpuPlatform()


def _vllm_parser() -> argparse.ArgumentParser:
    from vllm.entrypoints.openai.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser(prog="vllm serve", exit_on_error=False))


def _flag_values(args: list[str]) -> dict[str, str | bool]:
    """The rendered `--flag value` pairs (bare flags as True), by engine-argument name."""
    values: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        if args[i].startswith("--"):
            name = args[i][2:].replace("-", "_")
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                values[name] = args[i + 1]
                i += 2
                continue
            values[name] = True
        i += 1
    return values


def check_vllm_command(args: list[str]) -> str:
    """Parse one `vllm serve` argument list as vLLM does; return a summary or raise."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    parser = _vllm_parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit as err:  # argparse reports the refused argument on stderr
        raise ValueError(f"vLLM's parser refused {args}") from err
    parsed.model = parsed.model_tag or parsed.model
    engine = AsyncEngineArgs.from_cli_args(parsed)
    for name, given in _flag_values(args).items():
        if not hasattr(engine, name):
            continue  # a frontend argument (--port, --served-model-name, ...)
        held = getattr(engine, name)
        wanted: Any = given
        if isinstance(held, list):  # nargs="+", e.g. --served-model-name
            wanted = [given]
        elif isinstance(held, bool):
            wanted = given is True
        elif isinstance(held, int):
            wanted = int(str(given))
        elif isinstance(held, float):
            wanted = float(str(given))
        if held != wanted:
            raise ValueError(
                f"--{name.replace('_', '-')} {given!r} became {held!r} in vLLM's engine arguments"
            )
    layout = f"tp {engine.tensor_parallel_size}"
    if engine.data_parallel_size > 1:
        layout += f" x dp {engine.data_parallel_size}"
    local = engine.data_parallel_size_local
    if local is not None and local < engine.data_parallel_size:
        layout += f" ({local} local from rank {engine.data_parallel_start_rank})"
    if engine.pipeline_parallel_size > 1:
        layout += f" x pp {engine.pipeline_parallel_size}"
    if engine.enable_expert_parallel:
        layout += " + ep"
    return f"{engine.model}: {layout}, max_model_len {engine.max_model_len}"


def group_commands(group_set: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The `vllm serve` arguments each pod of a LeaderWorkerSet group runs, as its shell expands
    them ((role, arguments) for the leader and for a worker that runs the engine)."""
    template = group_set["spec"]["leaderWorkerTemplate"]
    commands = []
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp)
        for name, body in _STAND_INS.items():
            stand_in = bin_dir / name
            stand_in.write_text(f"#!/bin/sh\n{body}\n")
            stand_in.chmod(0o755)
        for role in ("leaderTemplate", "workerTemplate"):
            (container,) = template[role]["spec"]["containers"]
            argv = bin_dir / f"{role}.argv"
            env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GPUPOOL_ARGV": str(argv), **_GROUP_ENV}
            subprocess.run(container["command"], env=env, check=True, timeout=60)
            if argv.exists():
                args = argv.read_text().split("\0")[:-1]
                if args[:1] == ["serve"]:
                    commands.append((role.removesuffix("Template"), args[1:]))
    return commands


def check_triton_repository(config_map: dict[str, Any]) -> list[str]:
    """Parse each config.pbtxt of a model repository and its vLLM backend's model.json."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    from vllm.engine.arg_utils import AsyncEngineArgs

    notes = []
    for key, text in sorted(config_map.get("data", {}).items()):
        if key.endswith("config.pbtxt"):
            config = text_format.Parse(text, model_config_pb2.ModelConfig())
            notes.append(
                f"config.pbtxt: backend {config.backend}, max_batch_size {config.max_batch_size}, "
                f"{len(config.instance_group)} instance group(s)"
            )
        elif key.endswith("model.json"):
            options = json.loads(text)
            engine = AsyncEngineArgs(**options)  # TypeError on a field vLLM does not know
            notes.append(f"model.json: {engine.model}, tp {engine.tensor_parallel_size}")
    return notes


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--gpupool", default=str(ROOT / ".venv" / "bin" / "gpupool"))
    options = cli.parse_args()
    import vllm

    _answer_for_the_platform()
    print(f"vLLM {vllm.__version__}")
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, md, pool in _cases(Path(tmp)):
            for obj in _render(options.gpupool, md, pool):
                try:
                    if obj["kind"] == "Deployment":
                        for container in obj["spec"]["template"]["spec"]["containers"]:
                            if container.get("command", [])[-1:] == ["serve"]:
                                print(f"ok   {name}: vllm serve {check_vllm_command(container['args'])}")
                                checked += 1
                    elif obj["kind"] == "LeaderWorkerSet":
                        for role, args in group_commands(obj):
                            print(f"ok   {name} {role}: vllm serve {check_vllm_command(args)}")
                            checked += 1
                    elif obj["kind"] == "ConfigMap" and "config.pbtxt" in obj.get("data", {}):
                        for note in check_triton_repository(obj):
                            print(f"ok   {name}: {note}")
                            checked += 1
                except Exception as err:  # every refusal is reported, then the next object
                    failures += 1
                    print(f"FAIL {name} {obj['kind']}/{obj['metadata']['name']}: {err}")
    print(f"{checked} checked, {failures} refused")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
