"""Machine-readable reports: versioned JSON and flat CSV."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from perfbench.metrics.summary import Summary
from perfbench.report.output import to_csv as csv_text
from perfbench.versioned import versioned


def to_json(summaries: Sequence[Summary]) -> str:
    return json.dumps(versioned({"runs": [s.to_dict() for s in summaries]}), indent=2)


def flat(s: Summary) -> dict[str, Any]:
    """One CSV row: scalar fields, then ``<metric>_<stat>`` for every distribution."""
    data = s.to_dict()
    row: dict[str, Any] = {}
    for key, value in data.items():
        if key in (
            "distributions",
            "warnings",
            "by_dataset",
            "exact_output",
            "token_check",
            "server",
            "turns",
        ):
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                row[f"{key}_{k}"] = v
        else:
            row[key] = value
    for name, dist in data["distributions"].items():
        row[f"{name}_n"] = dist["n"]
        row[f"{name}_mean"] = dist["mean"]
        for label, v in dist["values"].items():
            row[f"{name}_{label}"] = v
    row.update(_server_columns(data["server"]))
    row["warnings"] = " | ".join(s.warnings)
    return row


def _server_columns(server: dict[str, Any]) -> dict[str, Any]:
    """``server_<figure>[_mean|_peak]`` columns: the server's figures, flat (names left out)."""
    if not server:
        return {}
    out: dict[str, Any] = {}
    for key, value in server.items():
        if key in ("names", "url", "last_error"):
            continue
        if isinstance(value, dict):
            for stat, v in value.items():
                out[f"server_{key}_{stat}"] = v
        else:
            out[f"server_{key}"] = value
    return out


def to_csv(summaries: Sequence[Summary]) -> str:
    return csv_text([flat(s) for s in summaries])
