"""The package as users get it: every import declared, the wheel complete, and a fresh install
from the wheel that runs ``perfbench perf`` on its defaults from a folder outside the checkout.

The fresh install fetches perfbench's dependencies from the package index (pip's cache makes it
quick after ``make test`` has installed the same ones); it is the one test that needs PyPI.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "perfbench"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    """Every distribution pyproject.toml asks for → where ("core", or the extras' names)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out: dict[str, set[str]] = {}
    for where, requirements in [
        ("core", project["dependencies"]),
        *project["optional-dependencies"].items(),
    ]:
        for req in requirements:
            name = re.match(r"[A-Za-z0-9_.-]+", req)
            assert name is not None, req
            out.setdefault(_norm(name.group()), set()).add(where)
    return out


def _imported() -> dict[str, str]:
    """Every top-level module perfbench imports (at any depth of its code) → one file doing it."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names = [node.args[0].value]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    declared = _declared()
    owners = importlib.metadata.packages_distributions()
    missing = []
    imported = _imported()
    for module, where in sorted(imported.items()):
        if module in sys.stdlib_module_names or module in ("perfbench", "__future__"):
            continue
        dists = owners.get(module)
        if not dists and _norm(module) in declared:
            continue  # an extra that is not installed here (its distribution has its name)
        if not dists:
            missing.append(f"{module} ({where}): no installed distribution provides it")
        elif not any(_norm(d) in declared for d in dists):
            missing.append(f"{module} ({where}): {', '.join(dists)} is not in pyproject.toml")
    assert not missing, missing
    # the imports this test exists for are seen at all (its walk reaches lazy imports too)
    assert {"huggingface_hub", "yarl", "scipy", "ray", "pyarrow"} <= set(imported)
    assert declared["huggingface-hub"] == declared["yarl"] == {"core"}
    assert "ray" in declared["ray"] and "parquet" in declared["pyarrow"]
    assert "modelscope" in declared["modelscope"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("perfbench-*.whl")
    return path


def test_the_wheel_holds_every_module_and_the_shipped_datasets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    shipped = {str(p.relative_to(ROOT)) for p in (PACKAGE / "workload" / "data").glob("*.jsonl")}
    assert {
        "perfbench/workload/data/openqa.jsonl",
        "perfbench/workload/data/synthetic_math.jsonl",
    } <= shipped
    assert shipped <= names and "perfbench/py.typed" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "datasets/")) for n in names)


def test_a_fresh_install_runs_perf_on_its_defaults_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    bin_dir = env_dir / "bin"
    # a plain install, as a user does it: the wheel and its declared dependencies only
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()

    def perfbench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "perfbench"), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
            env=env,
        )

    run = perfbench("perf", "--number", "20", "--parallel", "4", "--quiet", "--json")
    assert run.returncode == 0, run.stderr
    (summary,) = json.loads(run.stdout)["runs"]
    assert summary["ok"] == 20 and summary["failed"] == 0
    assert (work / "outputs" / "perfbench.db").exists()  # the default place, beside the user
    listed = perfbench("datasets")
    assert (
        listed.returncode == 0 and "openqa" in listed.stdout and "synthetic_math" in listed.stdout
    )
    # the shipped eval set, graded, with no network
    graded = perfbench(
        "perf", "--dataset", "synthetic_math", "--number", "20", "--grade", "--quiet"
    )
    assert graded.returncode == 0, graded.stderr
    # an extra that is not installed: one line that names it
    (work / "x.parquet").write_bytes(b"PAR1")
    parquet = perfbench(
        "perf", "--dataset", "gsm8k", "--dataset-path", "x.parquet", "--number", "1"
    )
    assert parquet.returncode == 2 and parquet.stderr.count("\n") == 1, parquet.stderr
    assert "pip install 'perfbench[parquet]'" in parquet.stderr
    ray = perfbench("perf", "--ray", "--number", "1")
    assert ray.returncode == 2 and ray.stderr.count("\n") == 1, ray.stderr
    assert "perfbench[ray]" in ray.stderr
