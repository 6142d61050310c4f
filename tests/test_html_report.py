"""The HTML report: real runs against the built-in simulator, rendered, and opened in Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package;
without them it is skipped, unless ``PERFBENCH_REQUIRE_BROWSER=1`` (set by .ci/run), when it
fails. It never reaches the network: the page is a file:// URL, and the test checks that no
request the page made went anywhere else.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perfbench.report import html as report_html
from perfbench.store import Store
from tests.conftest import perfbench

EVIL_ANSWER = "</script><img src=x onerror=alert(1)><!-- & -->"
EVIL_NAME = "<b>x</b><img src=y onerror=alert(2)>"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _perf(db: Path, *args: str) -> None:
    done = perfbench("perf", "--db", str(db), "--quiet", "--seed", "1", *args, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1: graded math answers; runs 2-3: a two-level sweep with injected errors."""
    path = tmp_path_factory.mktemp("html") / "runs.db"
    _perf(path, "--number", "50", "--parallel", "8", "--dataset", "synthetic_math", "--grade")
    _perf(
        path,
        "--parallel", "1", "4",
        "--number", "20", "40",
        "--max-tokens", "64",
        "--name", EVIL_NAME,
        "--sim-args", "--error-rate 0.1 --seed 3",
    )  # fmt: skip
    with sqlite3.connect(path) as conn:
        # a hostile model: its answer tries to close the script and inject markup
        conn.execute(
            "UPDATE requests SET output_text = ? WHERE run_id = 1 AND idx = 0", [EVIL_ANSWER]
        )
        # server metrics: the table another part of perfbench fills; add samples if it did not
        conn.execute(
            "CREATE TABLE IF NOT EXISTS server_metrics (run_id INTEGER NOT NULL, t_ns INTEGER "
            "NOT NULL, name TEXT NOT NULL, value FLOAT, PRIMARY KEY (run_id, t_ns, name))"
        )
        if not conn.execute("SELECT count(*) FROM server_metrics WHERE run_id = 1").fetchone()[0]:
            samples = []
            for i in range(10):
                t = i * 500_000_000
                samples += [(1, t, "running", i % 8), (1, t, "generation_tokens", 1000.0 * i)]
            conn.executemany("INSERT INTO server_metrics VALUES (?, ?, ?, ?)", samples)
    return path


@pytest.fixture(scope="module")
def page(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    store = Store(db)
    try:
        report_html.write_html(store, store.runs(), out)
    finally:
        store.close()
    return out


def _spec(text: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="perfbench-data">(.*?)</script>', text, re.S)
    assert m, "the figures' JSON is missing"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    library = report_html._plotly_js()
    assert text.count(library) == 1  # inlined once, verbatim, with its license header
    assert "Licensed under the MIT license" in library
    ours = text.replace(library, "")
    # nothing of ours points outside the file: no URL, no external script, style or image
    assert not re.search(r"https?://", ours), re.findall(r".{40}https?://.{40}", ours)
    assert not re.search(r"<(script|img|link|iframe)\b[^>]*\b(src|href)\s*=", ours, re.I)
    assert "@import" not in ours and "url(" not in ours


def test_model_text_is_escaped(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "<img" not in text.replace(report_html._plotly_js(), "")
    assert html.escape(EVIL_ANSWER) in text  # the table shows it, as text
    blob = re.search(r'id="perfbench-data">(.*?)</script>', text, re.S)
    assert blob and "<" not in blob.group(1) and ">" not in blob.group(1)
    names = [t["name"] for c in _spec(text)["charts"] for t in c["data"] if "name" in t]
    assert any("&lt;img src=y onerror=alert(2)&gt;" in n for n in names)  # plotly shows it as text


def test_page_shows_every_section(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    charts = _spec(text)["charts"]
    assert not any("title" in c["layout"] for c in charts)  # titles are the cards' headings
    for heading in (
        "TTFT CDF",
        "TPOT histogram",
        "ITL CDF",
        "E2E histogram",
        "Throughput against load",
        "TTFT against load",
        "Requests completed per second",
        "Output tokens per second",
        "Errors per second",
        "Requests running on the server",
        "Generation tokens per second (server)",
    ):
        assert f"<h3>{heading}</h3>" in text, heading
    # one CDF trace per run, on the same axes
    cdf = charts[0]["data"]
    assert len(cdf) == 3 and all(len(t["x"]) > 0 for t in cdf)
    # the sweep: runs 2 and 3 make one line with two points (run 1 a line of its own)
    through = next(c for c in charts if "output tokens/s" in c["layout"]["yaxis"]["title"]["text"])
    assert sorted(len(t["x"]) for t in through["data"]) == [1, 1, 2, 2]
    # errors were injected in the sweep, and show on its timeline
    errors = next(c for c in charts if c["layout"]["yaxis"]["title"]["text"] == "errors/s")
    assert sum(sum(y or 0 for y in t["y"]) for t in errors["data"]) > 0
    # grades: a mark per graded answer, with the prediction and the gold answer
    assert text.count('<span class="yes">✓</span>') + text.count('<span class="no">✗</span>') == 50
    assert "50 of 50 measured requests" in text


def test_bounded_output(db: Path, tmp_path: Path) -> None:
    store = Store(db)
    try:
        text = report_html.render_html(store, store.runs()[:1], max_rows=7)
    finally:
        store.close()
    assert text.count('<td class="num">') == 7  # the idx cells: seven rows
    assert "7 of 50 measured requests (the first 7" in text
    # a CDF of many values is at most CDF_POINTS + 1 quantiles
    d = report_html._dist_of(np.random.default_rng(0).exponential(size=200_000))
    assert d.xs.size == report_html.CDF_POINTS + 1 and not d.step
    assert report_html._bin_width(3 * 3600) * report_html.TIMELINE_BINS >= 3 * 3600


def test_spread_is_exact() -> None:
    """Tokens spread over [first, last]: bins get their share, and nothing is lost."""
    edges = np.arange(0.0, 5.0)
    got = report_html._spread(
        np.array([0.5, 2.0, 3.0]), np.array([2.5, 2.0, 4.0]), np.array([20.0, 7.0, 4.0]), edges
    )
    assert got.tolist() == pytest.approx([5.0, 10.0, 5.0 + 7.0, 4.0])
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 100, 1000)
    e = s + rng.exponential(5, 1000)
    a = rng.integers(1, 500, 1000).astype(float)
    assert report_html._spread(s, e, a, np.arange(0.0, 200.0)).sum() == pytest.approx(a.sum())


# -- in a real browser -------------------------------------------------------------------------


def _program(path: str) -> str | None:
    return path if os.path.exists(path) else shutil.which(Path(path).name)


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if _program(path) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    why = _browser_missing()
    if why:
        if os.environ.get("PERFBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PERFBENCH_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.binary_location = str(_program(CHROMIUM))
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # a driver path given: selenium does not run Selenium Manager (which would go online)
    browser = webdriver.Chrome(service=Service(str(_program(CHROMEDRIVER))), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def test_renders_in_chromium(driver: Any, page: Path, tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.support.ui import WebDriverWait

    expected = len(_spec(page.read_text(encoding="utf-8"))["charts"])
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: (
            d.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
            == expected
        )
    )
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    # every chart drew its SVG, and its traces have points
    drawn = driver.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (g) {"
        "  return [g.querySelectorAll('.main-svg').length, g.data.length,"
        "          g.data.reduce(function (n, t) { return n + (t.x ? t.x.length : 0); }, 0),"
        "          g.querySelectorAll('.trace').length]; })"
    )
    assert len(drawn) == expected
    for i, (svgs, traces, points, drawn_traces) in enumerate(drawn):
        assert svgs >= 1, f"chart {i} has no SVG"
        assert traces >= 1 and points > 0 and drawn_traces >= 1, f"chart {i} is empty"
    # the hostile answer is on the page as text, and made no element and no alert
    assert driver.execute_script(
        "return document.body.innerText.includes(arguments[0])", EVIL_ANSWER
    )
    assert driver.execute_script("return document.images.length") == 0
    assert driver.execute_script(
        "var s = arguments[0]; return Array.from(document.querySelectorAll('.legendtext'))"
        ".some(function (e) { return e.textContent.includes(s); })",
        "<img src=y onerror=alert(2)>",
    )
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    # the page asked for nothing but itself (and in-memory data: or blob: URLs)
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls and all(u.split(":", 1)[0] in ("file", "data", "blob") for u in urls), urls
    # sorting the table by a column works
    driver.execute_script("document.querySelector('table.requests th:nth-child(4)').click()")
    e2e = driver.execute_script(
        "return Array.from(document.querySelector('table.requests').tBodies[0].rows)"
        ".map(function (r) { return parseFloat(r.cells[3].dataset.v); })"
        ".filter(function (v) { return !isNaN(v); })"
    )
    assert e2e == sorted(e2e) and len(e2e) > 10
    driver.save_screenshot(str(tmp_path / "html-report.png"))
    assert (tmp_path / "html-report.png").stat().st_size > 10_000


def test_report_html_from_the_cli(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    done = perfbench("report", "--db", str(db), "--html", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert out.stat().st_size > 1_000_000 and "Plotly" in text and "<table" in text
    bad = perfbench("report", "--db", str(db), "--html", str(tmp_path / "no" / "such" / "x.html"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--html" in bad.stderr


def test_a_sweeps_levels_make_one_line(tmp_path: Path) -> None:
    """`perfbench sweep` runs each level as its own command (its own batch) under one name:
    the levels still make one line against load."""
    db = tmp_path / "sweep.db"
    for level in ("1", "4"):
        _perf(db, "--parallel", level, "--number", "12", "--max-tokens", "16", "--name", "sw")
    store = Store(db)
    try:
        text = report_html.render_html(store, store.runs())
    finally:
        store.close()
    charts = _spec(text)["charts"]
    through = next(c for c in charts if "output tokens/s" in c["layout"]["yaxis"]["title"]["text"])
    assert sorted(len(t["x"]) for t in through["data"]) == [2, 2]  # tok/s and req/s, 2 levels
