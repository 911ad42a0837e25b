"""Issue 14: pool workers end with their parent (kill -9 of a sweep left workers alive for minutes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PARENT = textwrap.dedent("""
    import multiprocessing as mp, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from backtest.sweep.tasks import worker_init

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=worker_init,
                                   initargs=(b"\\x80\\x04}\\x94.", os.getpid()))
        pid = pool.submit(os.getpid).result()
        print(pid, flush=True)
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for a reaper is gone as far as memory goes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def test_a_worker_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[3]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker = int(proc.stdout.readline())
        assert _alive(worker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for _ in range(200):  # liveness, not speed: the watchdog polls every 0.5 s
            if not _alive(worker):
                break
            time.sleep(0.05)
        assert not _alive(worker), "the pool worker outlived its killed parent"
    finally:
        proc.kill()
