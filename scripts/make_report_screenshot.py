"""Regenerate docs/img/html-report.png: a sweep on the built-in simulator, its HTML report, and a
screenshot of the page in headless Chromium (Debian's chromium and chromium-driver, selenium).

    .venv/bin/python scripts/make_report_screenshot.py [--keep DIR]

About a minute. With --keep DIR the database and the page stay in DIR.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "html-report.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the database and the page here")
    parser.add_argument("--height", type=int, default=1900, help="screenshot height (px)")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = ns.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db, page = work / "runs.db", work / "report.html"
        db.unlink(missing_ok=True)
        perf = [sys.executable, "-m", "perfbench", "perf", "--db", str(db), "--quiet"]
        subprocess.run(
            [*perf, "--parallel", "1", "8", "32", "--number", "40", "160", "320"]
            + ["--max-tokens", "128", "--seed", "1", "--name", "sweep"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        from perfbench.report.html import write_html
        from perfbench.store import Store

        store = Store(db)
        try:
            write_html(store, store.runs(), page)
        finally:
            store.close()
        print(f"{page}: {page.stat().st_size / 1e6:.2f} MB")
        shoot(page, OUT, ns.height)
    print(f"wrote {OUT}")
    return 0


def shoot(page: Path, out: Path, height: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", f"--window-size=1400,{height}"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.as_uri())
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
