"""`perfbench report --json` of a kept database is byte-for-byte what it was when the database was
made: a refactor that changes any figure, field or rounding fails here.

tests/data/golden.db holds five runs made by perfbench against its simulator (closed loop with
warm-up at two levels, an open loop with injected errors, a graded eval run with two samples per
prompt, a non-streamed --mix run); tests/data/golden-report.json is the report printed then. The
report names no time of its own making, so the comparison is exact. Regenerate both only when a
figure's definition changes on purpose, and say so in the changelog.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import ROOT, perfbench

DATA = ROOT / "tests" / "data"


def test_report_json_of_the_kept_database_is_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "golden.db"
    shutil.copy(DATA / "golden.db", db)  # reading may upgrade the schema: never touch the original
    done = perfbench("report", "1", "2", "3", "4", "5", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    expected = (DATA / "golden-report.json").read_text()
    assert json.loads(done.stdout) == json.loads(expected)
    assert done.stdout == expected
