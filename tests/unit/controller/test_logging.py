"""`gpupool run --log-format json`: one JSON object per line, naming the object it is about."""

from __future__ import annotations

import json
import logging

import pytest

from gpupool.controller.runner import JsonFormatter


def test_records_about_an_object_carry_its_kind_namespace_and_name() -> None:
    logger = logging.getLogger("gpupool.test")
    extra = {"obj_kind": "Deployment", "obj_namespace": "team-a", "obj_name": "chat"}
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, "applied %s", ("x",), None, extra=extra
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["logger"] == "gpupool.test"
    assert entry["message"] == "applied x"
    assert (entry["kind"], entry["namespace"], entry["name"]) == ("Deployment", "team-a", "chat")
    assert entry["level"] == "INFO"


def test_records_about_nothing_in_particular_have_no_object_fields() -> None:
    record = logging.LogRecord("gpupool", logging.WARNING, __file__, 1, "resync failed", (), None)
    entry = json.loads(JsonFormatter().format(record))
    assert "namespace" not in entry and entry["message"] == "resync failed"


def test_malloc_arenas_are_capped_unless_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpupool.controller.runner import cap_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_malloc_arenas() is False  # the user's setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    # This machine's C library is glibc, whose mallopt takes the cap.
    assert cap_malloc_arenas() is True
