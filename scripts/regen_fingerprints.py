"""Regenerate tests/regression/fingerprints.json after an INTENDED change of the replay's numbers.

    python scripts/regen_fingerprints.py [--archive DIR] [--only may2021,oct2025]

Replays every recorded window x every standard design with the default parameters, writes the
fingerprints with the commit they were produced on (HEAD, "+dirty" when the tree has changes), and
prints what moved. Commit the file together with the change and say WHY the numbers moved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtest.paths import resolve_archive  # noqa: E402
from tests.regression.fingerprint import (  # noqa: E402
    EVENTS,
    FINGERPRINTS,
    FLOOR,
    LOG_SIG_DIGITS,
    SIG_DIGITS,
    diff,
    fingerprint,
    run_recorded,
)


def commit() -> str:
    git = {"cwd": ROOT, "capture_output": True, "text": True}
    head = subprocess.run(["git", "rev-parse", "HEAD"], **git).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default=None)
    ap.add_argument("--only", default=None, help="comma-separated event ids (others keep their fingerprints)")
    a = ap.parse_args()
    archive = resolve_archive(a.archive)
    if archive is None:
        sys.exit("error: recorded archive not found (--archive or BACKTEST_ARCHIVE)")
    events = a.only.split(",") if a.only else list(EVENTS)
    old = json.loads(FINGERPRINTS.read_text()) if FINGERPRINTS.exists() else {"cases": {}}
    cases = dict(old.get("cases", {}))
    with tempfile.TemporaryDirectory() as tmp:
        for event_id in events:
            runs = run_recorded(event_id, Path(tmp) / "market.duckdb", archive)
            for design, res in runs.results.items():
                key = f"{event_id}/{design}"
                new = fingerprint(res)
                moved = diff(cases.get(key, {}), new) if key in cases else ["  (new)"]
                if moved:
                    print(key + ":\n" + "\n".join(moved))
                cases[key] = new
    doc = {
        "commit": commit(),
        "precision": f"metrics rounded to {SIG_DIGITS} significant digits; event log hashed after rounding "
                     f"to {LOG_SIG_DIGITS} digits; |x| < {FLOOR} counts as 0 "
                     "(tests/regression/fingerprint.py)",
        "params": "backtest.engine.params.Params() defaults; designs with a start capital at 291,853,183 USD "
                  "(tests/regression/fingerprint.py pinned_capital)",
        "cases": dict(sorted(cases.items())),
    }
    FINGERPRINTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {FINGERPRINTS.relative_to(ROOT)} ({len(cases)} cases, commit {doc['commit']})")


if __name__ == "__main__":
    main()
