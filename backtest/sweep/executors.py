"""Where sweep tasks run: this process, a local process pool, or a Ray cluster.

Every executor gets the same tasks and the per-group payloads (compact numpy inputs), ships each
payload to a worker once (pool initializer / ``ray.put``), and yields ``(task, rows)`` as tasks finish;
the caller stores the rows. The rows do not depend on the executor (the evaluation is deterministic and
each task builds its plan from the same payload). A worker that dies is retried a bounded number of
times: the pool is rebuilt (``BrokenProcessPool``) or Ray resubmits the task.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from backtest.sweep.tasks import EventPayload, Task, install_payloads, run_task, worker_init
from loaders.errors import UserError

EXECUTORS = ("inprocess", "process", "ray")
MAX_RETRIES = 3
RAY_CONNECT_TIMEOUT_S = 5.0


class Executor:
    name = "base"

    def run(self, tasks: Sequence[Task], payloads: Mapping[str, EventPayload]) -> Iterator[tuple[Task, list]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (idempotent)."""


class InProcess(Executor):
    """Tasks one after another in this process (plans cached in this process)."""

    name = "inprocess"

    def run(self, tasks: Sequence[Task], payloads: Mapping[str, EventPayload]) -> Iterator[tuple[Task, list]]:
        install_payloads(dict(payloads))
        for t in tasks:
            yield t, run_task(t)


class ProcessPool(Executor):
    """A ``concurrent.futures`` pool of spawned processes; payloads pickled once per worker."""

    name = "process"

    def __init__(self, workers: int, max_retries: int = MAX_RETRIES) -> None:
        self.workers = workers
        self.max_retries = max_retries
        self.restarts = 0

    def run(self, tasks: Sequence[Task], payloads: Mapping[str, EventPayload]) -> Iterator[tuple[Task, list]]:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        blob = pickle.dumps(dict(payloads), protocol=pickle.HIGHEST_PROTOCOL)
        pending: deque[Task] = deque(tasks)
        attempts: dict[int, int] = {}
        while pending:
            pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=worker_init,
                initargs=(blob, os.getpid()),
            )
            futs = {}
            try:
                try:
                    while pending:
                        futs[pool.submit(run_task, pending[0])] = pending[0]
                        pending.popleft()
                except BrokenProcessPool:
                    pass  # a worker died already: the rest waits for the next pool
                while futs:
                    done, _ = wait(futs, return_when=FIRST_COMPLETED)
                    for fut in done:
                        t = futs.pop(fut)
                        try:
                            rows = fut.result()
                        except BrokenProcessPool:
                            n = attempts[id(t)] = attempts.get(id(t), 0) + 1
                            if n > self.max_retries:
                                raise UserError(
                                    f"sweep task {t.event}/{t.design} ({len(t.points)} points): a "
                                    f"worker died {n} times running it; results stored so far "
                                    f"are kept, rerun to resume"
                                ) from None
                            pending.append(t)
                            continue
                        yield t, rows
                if pending:
                    self.restarts += 1
            finally:
                if pending:
                    # A broken pool can race a worker spawned during submit: the pool's manager
                    # thread then waits forever for that idle worker (and so does interpreter
                    # exit). Terminate every worker it still knows before joining.
                    for proc in list(getattr(pool, "_processes", {}).values()):
                        proc.terminate()
                pool.shutdown(wait=True, cancel_futures=True)


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, when the Ray head (``host:port``, ``ray://host:port``) is not reachable."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--address {address}: expected HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UserError(
            f"--address {address}: Ray cluster not reachable ({e.strerror or e}); start one with "
            f"`ray start --head` or omit --address for a local Ray"
        ) from None


def _ray_task(task: Task, holder: list) -> list:
    """Runs on a Ray worker: the payload is fetched only when this process has no plan for the group."""
    from backtest.sweep import tasks as T

    if task.group in T._PLANS:
        return run_task(task)
    import ray

    return run_task(task, ray.get(holder[0]))


class Ray(Executor):
    """Ray tasks; a local Ray instance (``workers`` CPUs) unless ``address`` names a running cluster."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, max_retries: int = MAX_RETRIES) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(
                "--executor ray: Ray is not installed; pip install 'crash-backtest[ray]'"
            ) from None
        if address:
            check_ray_address(address)
        self._owned = not ray.is_initialized()
        if self._owned:
            import logging
            import os

            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
            kw: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
                "configure_logging": False,
            }
            try:
                if address:
                    ray.init(address=address, **kw)
                else:
                    ray.init(num_cpus=workers, _node_ip_address="127.0.0.1", **kw)
            except Exception as e:  # ConnectionError, TimeoutError, RuntimeError from Ray's startup
                raise UserError(
                    f"--executor ray: could not start/connect to Ray "
                    f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                ) from None
        self.max_retries = max_retries
        self._fn = ray.remote(max_retries=max_retries)(_ray_task)

    def run(self, tasks: Sequence[Task], payloads: Mapping[str, EventPayload]) -> Iterator[tuple[Task, list]]:
        import ray

        refs = {k: ray.put(p) for k, p in payloads.items()}
        futs = {self._fn.remote(t, [refs[t.group]]): t for t in tasks}
        try:
            while futs:
                done, _ = ray.wait(list(futs), num_returns=1)
                for ref in done:
                    t = futs.pop(ref)
                    try:
                        rows = ray.get(ref)
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
                        raise UserError(
                            f"sweep task {t.event}/{t.design}: Ray worker died "
                            f"{self.max_retries + 1} times ({type(e).__name__}); results stored "
                            f"so far are kept, rerun to resume"
                        ) from None
                    yield t, rows
        finally:
            for ref in futs:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        import ray

        if self._owned and ray.is_initialized():
            ray.shutdown()
            self._owned = False


def make_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    if kind not in EXECUTORS:
        raise UserError(f"--executor {kind}: valid: {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UserError(f"--workers {workers}: must be >= 1")
    if address and kind != "ray":
        raise UserError("--address is only used with --executor ray")
    if kind == "inprocess":
        return InProcess()
    if kind == "process":
        return ProcessPool(workers)
    return Ray(workers, address)
