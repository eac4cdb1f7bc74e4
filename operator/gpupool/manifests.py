"""Reading manifests from files for the command line: YAML documents in, validated models out.

Errors are ValueErrors with one line a person can act on; `gpupool.cli.main` prints them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def load_documents(path: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a file (`-` reads standard input), each a mapping."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not all(isinstance(d, dict) for d in docs):
        raise ValueError(f"{path}: every YAML document must be a mapping")
    return docs


def first_error(err: ValidationError, default: str = "") -> str:
    """`where: what` of the first problem pydantic found."""
    problem = err.errors()[0]
    where = ".".join(str(p) for p in problem["loc"]) or default
    return f"{where}: {problem['msg']}"


def parse_object(kind: type[Model], doc: dict[str, Any]) -> Model:
    """A manifest as one of our models; its status, if any, is ignored."""
    body = {k: v for k, v in doc.items() if k != "status"}
    body.setdefault("metadata", {})
    try:
        return kind.model_validate(body)
    except ValidationError as err:
        name = body["metadata"].get("name", "?")
        raise ValueError(f"{kind.__name__} {name}: {first_error(err)}") from err
