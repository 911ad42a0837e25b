"""The CLI answers --help without importing the heavy stack."""

import subprocess
import sys


def test_help_is_light() -> None:
    code = (
        "import sys; from backtest.cli import cli; from click.testing import CliRunner; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('polars', 'duckdb', 'ccxt', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy; print(r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "run" in out and "data" in out and "events" in out
