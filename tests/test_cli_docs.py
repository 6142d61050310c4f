"""docs/cli.md is generated from --help: it must match what the CLI prints today."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def test_cli_docs_are_current():
    text = (ROOT / "docs" / "cli.md").read_text()
    version = f"(Python {sys.version_info[0]}.{sys.version_info[1]})"
    if version not in text.splitlines()[2]:
        pytest.skip(
            "docs/cli.md was generated with another Python; argparse formats help differently"
        )
    spec = importlib.util.spec_from_file_location(
        "make_cli_docs", ROOT / "scripts" / "make_cli_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert text == expected, "docs/cli.md is stale: run .venv/bin/python scripts/make_cli_docs.py"
