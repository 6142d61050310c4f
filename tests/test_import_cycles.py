"""scripts/import_cycles.py finds import circles through every kind of import, on packages
written here, and perfbench itself has none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "import_cycles.py"


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / next(iter(files)).split("/")[0]


def _run(package: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--package", str(package), "--where"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_circles_through_type_checking_and_function_imports(tmp_path: Path):
    package = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.a import A\n"
            ),
            "pkg/sub/__init__.py": "from .c import C\n",
            "pkg/sub/c.py": "class C:\n    def f(self):\n        from ..d import D\n",
            "pkg/d.py": "import pkg.sub.c\n\nD = 1\n",
            "pkg/e.py": "from . import a\nfrom .sub import C\n",  # imports into circles, in none
        },
    )
    proc = _run(package)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("    ")]
    assert lines == [
        "pkg.a -> pkg.b -> pkg.a",
        "pkg.d -> pkg.sub.c -> pkg.d",
        "2 import circles",
    ]
    assert "    pkg.b line 4 imports pkg.a" in proc.stdout
    assert "    pkg.sub.c line 3 imports pkg.d" in proc.stdout


def test_a_circle_through_the_package_init(tmp_path: Path):
    """`from pkg import __version__` is an import of pkg (its __init__.py), like any other."""
    files = {
        "pkg/__init__.py": '__version__ = "1"\n',
        "pkg/x.py": "from pkg import __version__\n",
        "pkg/y.py": "from . import x\n",
    }
    package = _package(tmp_path, files)
    proc = _run(package)
    assert (proc.returncode, proc.stdout) == (0, "0 import circles\n"), proc.stderr

    lazy = 'def __getattr__(name):\n    from pkg.y import Y\n\n__version__ = "1"\n'
    (package / "__init__.py").write_text(lazy, encoding="utf-8")
    proc = _run(package)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "pkg -> pkg.y -> pkg.x -> pkg"
    assert proc.stdout.splitlines()[-1] == "1 import circles"


def test_a_knot_of_three_is_one_circle_through_all_of_them(tmp_path: Path):
    files = {
        "knot/__init__.py": "",
        "knot/a.py": "from knot import b, c\n",
        "knot/b.py": "import knot.a\n",
        "knot/c.py": "from knot.a import thing\n",
    }
    proc = _run(_package(tmp_path, files))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("    ")]
    assert lines == ["knot.a -> knot.b -> knot.a -> knot.c -> knot.a", "1 import circles"]


def test_perfbench_has_no_import_circle():
    done = _run(ROOT / "perfbench")
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("0 import circles")
