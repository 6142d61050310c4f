"""docs/cli.md is generated from the parser's structure (not from --help), the same on every
Python: it must match exactly, and name every command and flag the parser has."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from perfbench.cli import build_parser
from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "make_cli_docs.py"
DOC = ROOT / "docs" / "cli.md"


def _script():
    spec = importlib.util.spec_from_file_location("make_cli_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_docs_are_current():
    assert DOC.read_text(encoding="utf-8") == _script().render(), (
        "docs/cli.md is stale: run python scripts/make_cli_docs.py"
    )


def _walk(
    parser: argparse.ArgumentParser, prog: str
) -> Iterator[tuple[str, list[str], argparse.ArgumentParser]]:
    """(prog, its names, parser) of every command, found independently of the script."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            firsts: dict[int, str] = {}
            for name, sub in action.choices.items():
                firsts.setdefault(id(sub), name)
            for name in firsts.values():
                sub = action.choices[name]
                names = [n for n, p in action.choices.items() if p is sub]
                yield f"{prog} {name}", names, sub
                yield from _walk(sub, f"{prog} {name}")


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_command_and_option_is_in_the_docs():
    text = DOC.read_text(encoding="utf-8")
    sections = _sections(text)
    parser = build_parser()
    commands = [(parser.prog, [], parser), *_walk(parser, parser.prog)]
    assert len(commands) > 1, "the parser has no subcommands?"
    for prog, names, command in commands:
        assert prog in sections, f"docs/cli.md has no section '## {prog}'"
        for name in names:
            assert f"`{name}`" in text, f"docs/cli.md does not name the command {name!r}"
        for action in command._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                assert re.search(rf"`{re.escape(option)}[` ]", sections[prog]), (
                    f"docs/cli.md's section '## {prog}' does not document {option}"
                )


def test_check_flag(tmp_path: Path):
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n", encoding="utf-8")
    check = [sys.executable, str(SCRIPT), "--check", "--output", str(stale)]
    proc = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "stale" in proc.stderr
    write = [sys.executable, str(SCRIPT), "--output", str(stale)]
    subprocess.run(write, check=True, timeout=120)
    assert subprocess.run(check, capture_output=True, timeout=120).returncode == 0
