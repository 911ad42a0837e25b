"""The HTML report: one self-contained file, rendered by headless Chromium; staged writes; Parquet table."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from backtest.engine.api import design_names, run_event
from backtest.engine.params import Params
from backtest.metrics import add_fund_metrics
from backtest.report.html import REPORT_FILE, TABLE_FILE, EventSection, render, staged_output, write_report
from backtest.report.plots import window_prices
from loaders.errors import UserError
from tests.backtest.test_run_designs import FakeEvent, synthetic_inputs

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def section() -> EventSection:
    ev = FakeEvent()
    inputs = synthetic_inputs()
    p = Params()
    results = run_event(ev, None, inputs, p)
    add_fund_metrics(results, window_s=(ev.end - ev.start).total_seconds(), risk_free=0.04)
    return EventSection(ev, results, window_prices(inputs), "binanceusdm", p, 0.04)


@pytest.fixture(scope="module")
def page(section) -> str:
    return render([section], title="Insurance-fund designs in syn", command="backtest run --event syn")


def test_page_is_self_contained(page):
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) == 3  # price & flow, fund value, cumulative ADL
    for b64 in imgs:
        png = base64.b64decode(b64)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_page_content(page, section):
    rows = re.findall(r'<tr data-design="([^"]+)">', page)
    assert rows == design_names()
    assert "fund/OI start" in page and "winners&#x27; haircut" in page and "depleted (UTC)" in page
    # every model parameter and each window's assumptions are listed
    for key in ("param.impact_y", "param.clearance_fee", "risk_free", "price_path"):
        assert f"<td>{key}</td>" in page
    assert "capital_usd = " in page  # design parameters
    assert "1970-01-07 06:00 UTC" in page  # window start, UTC


def test_rendering_is_deterministic(section, page):
    again = render([section], title="Insurance-fund designs in syn", command="backtest run --event syn")
    assert again == page


def test_write_report_and_parquet(tmp_path, section):
    out = tmp_path / "rep"
    with staged_output(out) as stage:
        write_report(stage, [section], title="t", command="c")
        assert not out.exists()  # nothing visible until the block ends
    assert sorted(p.name for p in out.iterdir()) == [REPORT_FILE, TABLE_FILE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    frame = pl.read_parquet(out / TABLE_FILE)
    assert frame.height == len(design_names())
    assert frame["design"].to_list() == design_names()
    for col in ("event", "fund_start_usd", "max_drawdown_pct", "depleted", "capital_cost_usd", "assumptions"):
        assert col in frame.columns
    assert frame["depleted"].dtype == pl.Boolean
    assert json.loads(frame["assumptions"][0])["param.impact_y"]


def test_failure_leaves_nothing_and_keeps_old_files(tmp_path, section):
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        write_report(stage, [section], title="t", command="c")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / REPORT_FILE).write_text("old")
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        (stage / REPORT_FILE).write_text("half")
        raise RuntimeError("boom")
    assert (out / REPORT_FILE).read_text() == "old"
    with staged_output(out) as stage:
        write_report(stage, [section], title="t", command="c")
    assert (out / REPORT_FILE).read_text().startswith("<!DOCTYPE html>")
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_unwritable_targets(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for bad in (f, f / "sub", tmp_path / "a" / "b"):
        with pytest.raises(UserError, match="--out"), staged_output(bad):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const rows = [...document.querySelectorAll("table.comparison tbody tr")].map(r => r.dataset.design);
  const pre = document.createElement("pre");
  pre.id = "check";
  pre.textContent = JSON.stringify({imgs, rows, title: document.title,
                                    width: document.documentElement.scrollWidth});
  document.body.appendChild(pre);
});
</script>"""


def test_headless_chromium_renders_the_page(tmp_path, page):
    exe = _chromium()
    if exe is None:
        if ON_CI:
            pytest.fail("chromium not found (CI=true: install Debian's chromium package)")
        pytest.skip("chromium not installed")
    # a copy with a small probe script (the report itself has none)
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--window-size=1300,900",
    ]  # fmt: skip
    proc = subprocess.run(
        [exe, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    )
    m = re.search(r'<pre id="check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe output; stderr: {proc.stderr[-2000:]}"
    check = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["title"] == "Insurance-fund designs in syn"
    assert len(check["imgs"]) == 3
    for complete, w, h in check["imgs"]:
        assert complete and w > 300 and h > 100  # decoded images, not broken icons
    assert check["rows"] == design_names()  # one table row per design
    shot = tmp_path / "page.png"
    subprocess.run(
        [exe, *flags, f"--screenshot={shot}", Path(probe).as_uri()], capture_output=True, timeout=120
    )
    assert shot.is_file() and shot.stat().st_size > 50_000


def test_a_staging_folder_of_a_killed_run_is_removed(tmp_path):
    """Issue 14: kill -9 during --out left an empty staging folder; the next run removes it."""
    import subprocess
    import sys

    from backtest.report.html import staged_output

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".report.tmp-{dead.pid}-abc"
    stale.mkdir()
    live = tmp_path / f".report.tmp-{__import__('os').getpid()}-xyz"
    live.mkdir()
    with staged_output(tmp_path / "report") as stage:
        (stage / "report.html").write_text("x")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "report" / "report.html").exists()
