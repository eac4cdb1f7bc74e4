"""The operator image's Dockerfile. No container builder runs here, so its properties are read."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_base_image_is_a_pinned_slim_python_311() -> None:
    args = dict(rest.split("=", 1) for kw, rest in instructions() if kw == "ARG" and "=" in rest)
    bases = [rest.split()[0] for kw, rest in instructions() if kw == "FROM"]
    assert bases and all(b == "${PYTHON_IMAGE}" for b in bases)
    image = args["PYTHON_IMAGE"]
    # An exact patch release and Debian release (never `3.11`, `slim` or `latest`), or a digest.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", image), image


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for kw, rest in instructions() if kw == "USER"]
    assert users, "no USER: the image would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0
    assert not group or (group.isdigit() and int(group) != 0)
    # USER must be in the final stage.
    last_from = max(i for i, (kw, _) in enumerate(instructions()) if kw == "FROM")
    assert any(kw == "USER" for kw, _ in instructions()[last_from:])


def test_entrypoint_is_gpupool_run_in_exec_form() -> None:
    entrypoints = [rest for kw, rest in instructions() if kw == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == ["gpupool", "run"]


def test_only_the_package_enters_the_image() -> None:
    copies = [rest for kw, rest in instructions() if kw == "COPY" and "--from" not in rest]
    sources = {src for c in copies for src in c.split()[:-1]}
    assert sources == {"pyproject.toml", "README.md", "operator/"}
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    # Everything is excluded first, then only what the build needs is let back in.
    assert rules[0] == "*"
    assert {r for r in rules if r.startswith("!")} == {"!pyproject.toml", "!README.md", "!operator/"}
