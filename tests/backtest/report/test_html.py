"""The HTML report: one self-contained file, rendered by headless Chromium; staged writes; Parquet table."""

from __future__ import annotations

import base64
import html
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
from backtest.report.frames import BAR_COLUMNS, BARS_FILE, META_FILE, TICK_COLUMNS, TICKS_FILE
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
    # price & flow, crash hours, fund value per design, bad debt & surplus, cumulative ADL, waterfall
    assert len(imgs) == 6
    for b64 in imgs:
        png = base64.b64decode(b64)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_page_content(page, section):
    rows = re.findall(r'<tr data-design="([^"]+)">', page)
    assert rows == design_names()
    assert "fund/OI start" in page and "winners&#x27; haircut" in page and "depleted (UTC)" in page
    # every model parameter and each window's assumptions are listed
    for key in ("param.impact_y", "param.clearance_fee", "risk_free", "param.price_path"):
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
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [REPORT_FILE, TABLE_FILE, TICKS_FILE, BARS_FILE, META_FILE]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    frame = pl.read_parquet(out / TABLE_FILE)
    assert frame.height == len(design_names())
    assert frame["design"].to_list() == design_names()
    for col in ("event", "fund_start_usd", "max_drawdown_pct", "depleted", "capital_cost_usd", "assumptions"):
        assert col in frame.columns
    assert frame["depleted"].dtype == pl.Boolean
    assert json.loads(frame["assumptions"][0])["param.impact_y"]


def test_per_tick_and_per_bar_series_are_saved(tmp_path, section):
    with staged_output(tmp_path / "rep") as stage:
        write_report(stage, [section], title="t", command="c")
    ticks = pl.read_parquet(tmp_path / "rep" / TICKS_FILE)
    bars = pl.read_parquet(tmp_path / "rep" / BARS_FILE)
    assert ticks.columns == ["event", "design", "ts", *TICK_COLUMNS]
    assert bars.columns == ["event", "design", "symbol", "ts", "bar_s", "last", "mark", *BAR_COLUMNS]
    for r in section.results:
        d = r.record["design"]
        t = ticks.filter(pl.col("design") == d)
        win = r.series["in_window"]
        assert t.height == int(win.sum())
        assert t["fund_value"].to_list() == list(r.series["fund_value"][win])
        assert t["fund_asked"].sum() == pytest.approx(r.record["bad_debt_usd"], rel=1e-12)
        b = bars.filter(pl.col("design") == d)
        assert b["adl_notional_usd"].sum() == pytest.approx(r.record["adl_notional_usd"], rel=1e-12, abs=1e-6)
        for sym, f in r.per_symbol.items():
            bs = b.filter(pl.col("symbol") == sym)
            assert bs.height == len(section.prices[sym]["ts"])
            assert bs["liq_long_usd"].sum() == pytest.approx(f["liq_long_usd"], rel=1e-12)
            assert bs["bad_debt_usd"].sum() == pytest.approx(f["bad_debt_usd"], rel=1e-12, abs=1e-6)


def test_report_command_rerenders_the_same_page(tmp_path, section, capsys):
    from tests.support.cli import run_cli

    src = tmp_path / "rep"
    with staged_output(src) as stage:
        write_report(stage, [section], title="Insurance-fund designs in syn",
                     command="backtest run --event syn")
    original = (src / REPORT_FILE).read_text(encoding="utf-8")
    code, _, err = run_cli(["report", str(src / TABLE_FILE), "--out", str(tmp_path / "again")], capsys)
    assert code == 0, err
    assert (tmp_path / "again" / REPORT_FILE).read_text(encoding="utf-8") == original
    (src / REPORT_FILE).unlink()
    code, _, err = run_cli(["report", str(src), "--quiet"], capsys)  # in place
    assert code == 0 and (src / REPORT_FILE).read_text(encoding="utf-8") == original


@pytest.mark.parametrize("damage", ["missing-ticks", "bad-json", "bad-parquet", "no-dir"])
def test_report_command_errors_name_the_file(tmp_path, section, capsys, damage):
    from tests.support.cli import run_cli

    src = tmp_path / "rep"
    with staged_output(src) as stage:
        write_report(stage, [section], title="t", command="c")
    target = {"missing-ticks": src / TICKS_FILE, "bad-json": src / META_FILE, "bad-parquet": src / BARS_FILE,
              "no-dir": tmp_path / "nowhere"}[damage]
    if damage == "missing-ticks":
        target.unlink()
    elif damage != "no-dir":
        target.write_text("{ not this")
    before = sorted(p.name for p in src.iterdir())
    code, _, err = run_cli(["report", str(target if damage == "no-dir" else src)], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert str(target) in err or target.name in err
    assert sorted(p.name for p in src.iterdir()) == before  # nothing written, nothing lost


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
                                    width: document.documentElement.scrollWidth,
                                    height: document.documentElement.scrollHeight});
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
    assert len(check["imgs"]) == 6
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


@pytest.fixture(scope="module")
def recorded_reports(tmp_path_factory, archive_dir):
    """``backtest run --out`` on may2021 and oct2025 (every design), written once for the tests below."""
    import contextlib
    import io

    from backtest.cli import main

    root = tmp_path_factory.mktemp("recorded")
    db = root / "m.duckdb"
    out = {}
    for ev in ("may2021", "oct2025"):
        out[ev] = root / ev
        argv = ["run", "--event", ev, "--db", str(db), "--archive", str(archive_dir), "--out", str(out[ev]),
                "--quiet", "--format", "json"]
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
            main(argv)
            raise SystemExit(0)
        assert exc.value.code == 0
    return out


VIEWS = ("price and forced flow", "crash hours", "fund value per design", "cumulative bad debt and surplus",
         "cumulative ADL per design", "where each fund's change came from")


@pytest.mark.archive
@pytest.mark.parametrize("event", ["may2021", "oct2025"])
def test_recorded_report_has_the_analyst_views(recorded_reports, event, capsys):
    from tests.support.cli import run_cli

    d = recorded_reports[event]
    page = (d / REPORT_FILE).read_text(encoding="utf-8")
    alts = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="([^"]+)"', page)
    assert [html.unescape(a) for a in alts] == [f"{event} {v}" for v in VIEWS]
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    # issue 16 item 7: every per-bar panel states its resolution
    assert "summed into UTC hours" in text and "bar lengths in each title" in text
    # item 8: coin_symbol shows the symbol used and the coin held, never blank
    assert "coin_symbol = ;" not in text
    assert "coin_symbol = BTCUSDT = the event's first symbol (holds BTC, priced at the BTCUSDT mark)" in text
    assert "coin held at the end = " in text and " BTC" in text
    # item 9: one line per fact: no 'anchored on reported figures' beside 'no OI level known', no duplicate
    # price path, leverage mixes with their buckets
    assert "anchored on reported figures" not in text
    assert re.search(r"\bprice_path\b", text.replace("param.price_path", "")) is None
    assert re.search(r"param\.lev_neutral\s+2x [0-9.]+ % · 3x [0-9.]+ %", text)
    # issue 12: start capital and its rule per design
    assert "start capital 291.85M = the event's listed fund" in text if event == "may2021" else \
        "start capital 1.23B = the event's listed fund" in text
    # the results directory re-renders to the same page
    code, _, err = run_cli(["report", str(d), "--out", str(d.parent / f"{event}-again"), "--quiet"], capsys)
    assert code == 0, err
    assert (d.parent / f"{event}-again" / REPORT_FILE).read_text(encoding="utf-8") == page


@pytest.mark.archive
def test_recorded_reports_render_in_headless_chromium(recorded_reports, tmp_path):
    exe = _chromium()
    if exe is None:
        if ON_CI:
            pytest.fail("chromium not found (CI=true: install Debian's chromium package)")
        pytest.skip("chromium not installed")
    for event, d in recorded_reports.items():
        page = (d / REPORT_FILE).read_text(encoding="utf-8")
        probe = tmp_path / f"{event}.html"
        probe.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000", "--window-size=1300,900",
            "--enable-logging=stderr", "--v=0",
        ]  # fmt: skip
        proc = subprocess.run(
            [exe, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180
        )
        m = re.search(r'<pre id="check">(.*?)</pre>', proc.stdout, re.S)
        assert m, f"no probe output; stderr: {proc.stderr[-2000:]}"
        check = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        assert len(check["imgs"]) == 6
        for complete, w, h in check["imgs"]:
            assert complete and w > 600 and h > 200  # every image decodes
        assert check["rows"] == design_names()
        assert check["width"] <= 1300  # no page-wide horizontal scroll
        console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "check" not in line]
        assert not console, console
        # the whole page in one screenshot: every view, table and caption as a reader scrolls it
        shot = tmp_path / f"{event}.png"
        full = [f for f in flags if not f.startswith("--window-size")] + [
            f"--window-size=1300,{check['height']}", "--hide-scrollbars"]
        subprocess.run([exe, *full, f"--screenshot={shot}", probe.as_uri()], capture_output=True, timeout=180)
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (w, h) == (1300, check["height"]) and check["height"] > 5000 and len(png) > 500_000
