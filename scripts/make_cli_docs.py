"""Write docs/cli.md from the CLI's own --help texts (tests/test_cli_docs.py checks it is current).

.venv/bin/python scripts/make_cli_docs.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perfbench.cli import build_parser  # noqa: E402

COMMANDS = ("perf", "sim", "report", "grade", "compare-answers", "runs", "datasets")


def render() -> str:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# Command line\n",
        "Generated from `--help` by `scripts/make_cli_docs.py` "
        f"(Python {sys.version_info[0]}.{sys.version_info[1]}); do not edit by hand.\n",
        "```\n" + _help(parser) + "```\n",
    ]
    for name in COMMANDS:
        parts.append(f"## perfbench {name}\n")
        parts.append("```\n" + _help(subparsers.choices[name]) + "```\n")
    return "\n".join(parts)


def _help(parser: argparse.ArgumentParser) -> str:
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # the same wrapping on every machine
    try:
        return parser.format_help()
    finally:
        if old is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = old


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render())
