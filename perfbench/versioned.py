"""The one ``schema_version`` of every JSON document perfbench prints or writes, and the rule
that keeps that JSON standard (no NaN, no infinities)."""

from __future__ import annotations

import math
from typing import Any

SCHEMA_VERSION = 1
"""Bumped when a field of any JSON output changes meaning or goes away (new fields do not bump
it). Every document carries it at the top as ``"schema_version"``."""


def json_safe(value: Any) -> Any:
    """NaN and infinities → None, tuples → lists, throughout: the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_object(value: dict[str, Any]) -> dict[str, Any]:
    """:func:`json_safe` of a dict, typed as one."""
    out: dict[str, Any] = json_safe(value)
    return out


def versioned(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` made JSON-safe, with ``schema_version`` first."""
    return {"schema_version": SCHEMA_VERSION, **json_object(payload)}
