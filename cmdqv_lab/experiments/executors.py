"""Where points run: in this process, on a local process pool, or on a dask.distributed cluster.

Every executor maps a picklable function over tasks and yields results *as they finish*; the
caller writes them, so workers never touch the result directory (a remote dask worker need not
share the file system) and there is one writer per sweep. Results are put back in point order by
the caller, so the combined result does not depend on the executor or on completion order.

- :class:`SerialExecutor` (``--workers 1``): runs in the calling process; no start-up cost, and a
  debugger or profiler sees the simulation.
- :class:`ProcessExecutor` (``--workers N``): :class:`concurrent.futures.ProcessPoolExecutor`
  with the ``spawn`` start method. Chosen over a dask ``LocalCluster`` for one machine because it
  is the standard library, starts in about a second, opens no ports or dashboard, and has nothing
  to configure (no nanny, memory manager or spilling, which tiny per-point results never need);
  ``spawn`` because forking a process that has started polars' or numba's threads can deadlock.
  Each worker loads the compiled engine from numba's on-disk cache, and exits by itself if the
  sweep process dies (even by SIGKILL, which gives the pool no chance to stop it).
- :class:`DaskExecutor` (``--scheduler tcp://HOST:PORT``): a ``distributed.Client`` on an
  existing cluster. Workers must run the same cmdqv-lab code: each task carries the client's code
  version and a worker with different code refuses it. Start workers with ``--nthreads 1``
  (``dask worker tcp://HOST:PORT --nworkers N --nthreads 1``): the engine holds the GIL, so
  parallelism comes from processes.

Submission is windowed (at most ``2 x workers`` tasks in flight), so a sweep of many points keeps
little state in the parent and results are written continuously.

**A worker that dies** (SIGKILL, the OOM killer, a crash in native code) breaks a process pool: every
task in flight fails with ``BrokenProcessPool``, and nothing says which one killed it. The pool is
restarted and each of those tasks is retried once, *alone*, so a task that kills its worker again is
known to be the culprit: it stops the run with :class:`~cmdqv_lab.errors.WorkerDiedError` naming it
(exit status 3), and the tasks that merely shared the pool with it go on. Retries are listed in
``executor.retried``.

>>> with SerialExecutor() as ex:
...     sorted(ex.imap_unordered(abs, [-2, 1, -3]))
[1, 2, 3]
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from cmdqv_lab.errors import CmdqvError, WorkerDiedError


def describe_task(task: Any) -> str:
    """``point 3 (cpus=4, seed=1)`` for a sweep task, else the task's repr (shortened)."""
    if isinstance(task, dict) and "index" in task:
        label = task.get("label")
        return f"point {task['index']}" + (f" ({label})" if label else "")
    text = repr(task)
    return text if len(text) <= 60 else text[:57] + "..."


class ExecutorError(CmdqvError, RuntimeError):
    """The executor cannot be started (bad worker count, unreachable scheduler, mismatched code)."""


class SerialExecutor:
    """Run tasks one by one in this process."""

    n_workers = 1
    description = "this process (serial)"

    def __init__(self) -> None:
        self.retried: list[str] = []

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        for t in tasks:
            yield fn(t)


def _exit_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """Pool initializer: a daemon thread that ends this worker when ``parent`` is gone.

    A pool worker blocks on its task pipe forever if the parent is killed without a chance to
    shut the pool down; checking the parent pid (it changes when the worker is re-parented)
    bounds an orphan's life to the point it is computing.
    """
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _exit_now() -> None:
    """The last exit handler of a pool worker: flush and leave without tearing the interpreter down.

    A worker that has run a simulation spends about 0.2 s after its exit handlers freeing numba's
    and LLVM's objects, polars' and everything else module by module, and the pool's shutdown
    waits for it. A worker holds nothing that needs it: results went back through the pool's pipe
    when each task ended, and every file the engine writes (its caches) is renamed into place when
    written. Registered by :func:`_worker_init`, before anything a task imports registers its own
    handlers, so those still run (the handlers are called last registered, first called); the ones
    registered before it are multiprocessing's, which the worker's bootstrap has already run, and
    logging's, called here."""
    import contextlib
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or replaced
            stream.flush()
    os._exit(0)


def _worker_init(parent: int, input_thread: bool) -> None:
    """Pool initializer: :func:`_exit_with_parent`, :func:`_exit_now` at exit, and no engine input
    thread when the pool has a worker for every core (``CMDQV_LAB_INPUT_THREAD=0``, read by the
    engine's runner): each worker's thread would only take turns with another worker's engine.
    Measured with benchmarks/bench_sweep.py on 2 cores: 2 workers 16.5 s with the threads, 16.1 s
    without."""
    _exit_with_parent(parent)
    atexit.register(_exit_now)
    if not input_thread:
        os.environ["CMDQV_LAB_INPUT_THREAD"] = "0"


class ProcessExecutor:
    """A spawn-based process pool of ``workers`` processes."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ExecutorError(f"--workers={workers} must be at least 1")
        self.n_workers = workers
        self.description = f"local process pool ({workers} workers, spawn)"
        self._pool: cf.ProcessPoolExecutor | None = None
        #: ``"point 3 (...): worker died (...); retried"`` for every task retried after a worker death.
        self.retried: list[str] = []

    def _start(self) -> cf.ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.n_workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(os.getpid(), self.n_workers < (os.cpu_count() or 1)),
        )
        return self._pool

    def __enter__(self) -> ProcessExecutor:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=exc_type is None, cancel_futures=True)
            self._pool = None

    def _exit_codes(self) -> str:
        """Exit codes of the pool's dead processes, best effort (``"exit code -9"``)."""
        procs = getattr(self._pool, "_processes", None) or {}
        codes = sorted({p.exitcode for p in list(procs.values()) if p.exitcode not in (None, 0)})
        return ", ".join(f"exit code {c}" for c in codes) or "no exit status"

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        assert self._pool is not None, "use the executor as a context manager"
        it = iter(tasks)
        window = 2 * self.n_workers
        pending: dict[cf.Future[Any], Any] = {}
        retry: list[Any] = []  # tasks in flight when a worker died: each runs again, alone
        solo = False  # a retried task is running alone
        while True:
            if not pending:
                solo = bool(retry)
                if retry:
                    t = retry.pop(0)
                    pending[self._submit(fn, t)] = t
            while not solo and len(pending) < window:
                t = next(it, _END)
                if t is _END:
                    break
                pending[self._submit(fn, t)] = t
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            broken: list[Any] = []
            for f in done:
                t = pending.pop(f)
                try:
                    res = f.result()
                except BrokenProcessPool:
                    broken.append(t)
                    continue
                yield res
            if not broken:
                continue
            codes = self._exit_codes()
            if solo:  # it ran alone: it is what kills its worker
                raise WorkerDiedError(
                    f"{describe_task(broken[0])}: its worker process died twice ({codes}; killed, e.g. "
                    "out of memory?); finished points are kept"
                )
            for f, t in list(pending.items()):  # the rest of the pool's tasks fail the same way
                try:
                    yield f.result()
                except BrokenProcessPool:
                    broken.append(t)
            pending.clear()
            assert self._pool is not None
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._start()
            for t in broken:
                self.retried.append(f"{describe_task(t)}: worker process died ({codes}); retried")
            retry.extend(broken)

    def _submit(self, fn: Callable[[Any], Any], task: Any) -> cf.Future[Any]:
        assert self._pool is not None
        try:
            return self._pool.submit(fn, task)
        except BrokenProcessPool:  # broke between two submissions: start afresh
            self._pool.shutdown(wait=False, cancel_futures=True)
            return self._start().submit(fn, task)


def _set_no_input_thread() -> None:
    """Run on a dask worker: its engines run without input threads (``CMDQV_LAB_INPUT_THREAD=0``)."""
    os.environ["CMDQV_LAB_INPUT_THREAD"] = "0"


def _no_input_thread_on_full_hosts(client: Any) -> None:
    """Like :func:`_worker_init` for a local pool: the workers of a host whose worker threads (summed
    over its workers) fill its cores run their engines without input threads. The setting stays in
    those worker processes; workers that join later keep the default."""
    try:
        info = client.scheduler_info().get("workers", {})
        cores = client.run(os.cpu_count)  # worker address -> its host's core count
        on_host: dict[str, int] = {}
        for w in info.values():
            on_host[w["host"]] = on_host.get(w["host"], 0) + int(w["nthreads"])
        full = [a for a, w in info.items() if on_host[w["host"]] >= (cores.get(a) or 1)]
        if full:
            client.run(_set_no_input_thread, workers=full)
    except Exception:  # a speed setting: a cluster that cannot take it keeps its threads
        return


class DaskExecutor:
    """Tasks on an existing dask.distributed cluster reached at ``address``."""

    def __init__(self, address: str, timeout_s: float = 20.0):
        self.address = address
        self.timeout_s = timeout_s
        self.client: Any = None
        self.n_workers = 0
        self.description = f"dask.distributed at {address}"
        self.retried: list[str] = []

    def __enter__(self) -> DaskExecutor:
        try:
            from distributed import Client
        except ImportError as e:  # pragma: no cover - distributed is a dependency
            raise ExecutorError(f"dask.distributed is not installed: {e}") from None
        try:
            self.client = Client(self.address, timeout=self.timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise ExecutorError(f"cannot reach the dask scheduler at {self.address}: {e}") from None
        threads = sum(self.client.nthreads().values())
        self.n_workers = max(1, threads)
        self.description = f"dask.distributed at {self.address} ({threads} worker threads)"
        _no_input_thread_on_full_hosts(self.client)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        from distributed import as_completed

        it = iter(tasks)
        window = 2 * self.n_workers
        ac = as_completed(loop=self.client.loop)
        in_flight = 0

        def submit_more() -> None:
            nonlocal in_flight
            while in_flight < window:
                t = next(it, _END)
                if t is _END:
                    return
                # pure=False: a fresh task key each time, so a result another client left on the
                # cluster is never reused (reproduce must recompute)
                ac.add(self.client.submit(fn, t, pure=False, retries=0))
                in_flight += 1

        submit_more()
        while in_flight:
            fut = next(ac)
            in_flight -= 1
            try:
                res = fut.result()
            except Exception as e:
                if type(e).__name__ == "KilledWorker":  # distributed.KilledWorker: it killed workers
                    raise WorkerDiedError(f"dask: {str(e).splitlines()[0]}") from None
                raise
            fut.release()
            submit_more()
            yield res


_END = object()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> Any:
    """The executor for ``--workers`` / ``--scheduler`` (default: one worker per CPU)."""
    if scheduler:
        if workers is not None:
            raise ExecutorError("give --workers or --scheduler, not both (the cluster sets the workers)")
        if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            raise ExecutorError(f"--scheduler={scheduler!r}: expected an address like tcp://HOST:8786")
        return DaskExecutor(scheduler)
    n = (os.cpu_count() or 1) if workers is None else workers
    if n < 1:
        raise ExecutorError(f"--workers={n} must be at least 1")
    return SerialExecutor() if n == 1 else ProcessExecutor(n)
