"""Executors that map a function over items with a per-item timeout, so a distributed engine can replace them.

``Executor.map(fn, items, *, timeout_s, desc)`` returns one :class:`Outcome` per item, in input order: the value,
or an error string ("timeout after 60 s", "ValueError: ..."); it never raises for a failing item.
``ProcessExecutor`` runs items in spawned worker processes (safe on every platform; ``fn`` and the items must be
picklable, i.e. ``fn`` a module-level function) and kills and replaces a worker whose item overruns its timeout.
``SerialExecutor`` runs in-process (tests, one worker); its timeout uses SIGALRM where available.
``harness.parallel_dask.DaskExecutor`` runs them on a Dask cluster with the process pool's outcomes;
``harness.executors.default_executor`` chooses among the three.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol, runtime_checkable

__all__ = ["Executor", "Outcome", "ProcessExecutor", "SerialExecutor", "format_error"]

# Each worker process runs single-threaded BLAS/OpenMP/torch: the pool already uses the cores.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Outcome:
    """The result of one item: ``value`` when ``error`` is None, else the error text; ``seconds`` it took."""

    value: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Executor(Protocol):
    """Anything that maps ``fn`` over ``items`` and returns one Outcome per item, in order."""

    workers: int

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        *,
        timeout_s: float | None = None,
        desc: str = "",
    ) -> list[Outcome]: ...


def format_error(exc: BaseException) -> str:
    """``"TypeName: message"``, the form every recorded failure takes."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _timeout_text(timeout_s: float) -> str:
    return f"timeout after {timeout_s:g} s"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc or "items", unit="it", disable=not enabled, leave=False, mininterval=1)


class _Alarm(Exception):
    pass


@contextmanager
def _alarm(timeout_s: float | None) -> Iterator[None]:
    """Raise _Alarm in the main thread after ``timeout_s`` (no-op off the main thread or without SIGALRM)."""
    usable = (
        timeout_s is not None
        and timeout_s > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def _raise(signum, frame):
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call(fn: Callable[[Any], Any], item: Any, timeout_s: float | None) -> Outcome:
    start = time.perf_counter()
    try:
        with _alarm(timeout_s):
            value = fn(item)
    except _Alarm:
        return Outcome(None, _timeout_text(timeout_s), time.perf_counter() - start)
    except Exception as exc:
        return Outcome(None, format_error(exc), time.perf_counter() - start)
    return Outcome(value, None, time.perf_counter() - start)


class SerialExecutor:
    """Runs items one after another in this process."""

    workers = 1

    def __init__(self, *, progress: bool = True) -> None:
        self.progress = progress

    def map(self, fn, items, *, timeout_s=None, desc=""):
        outcomes = []
        with _progress(len(items), desc, self.progress) as bar:
            for item in items:
                outcomes.append(_call(fn, item, timeout_s))
                bar.update(1)
        return outcomes

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _exit_with_parent(parent: int, interval_s: float = 1.0) -> None:
    """End this worker when ``parent``, the process that started it, is gone (killed, say, by SIGKILL or an OOM
    killer): an orphaned worker would otherwise go on relaxing or fingerprinting for nobody, holding a core and its
    memory. The parent's pid comes from the parent itself: one that died while this worker was still importing has
    already left it to another parent, so ``os.getppid()`` read here would watch the wrong process."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_main(conn: Connection, parent: int) -> None:
    """Worker loop: receive (fn, item), send back (value, error, seconds); ``None`` ends it."""
    _exit_with_parent(parent)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, item = task
        start = time.perf_counter()
        try:
            result = (fn(item), None)
        except Exception as exc:
            result = (None, format_error(exc))
        try:
            conn.send((*result, time.perf_counter() - start))
        except Exception as exc:  # an unpicklable return value is the item's failure, not the pool's
            conn.send((None, f"result not picklable: {format_error(exc)}", time.perf_counter() - start))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    index: int | None = None  # item being processed
    started: float = 0.0


_ENV_LOCK = threading.Lock()


@contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Spawned children inherit the environment at start: pin their thread pools to one thread."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in _THREAD_ENV}
        for key in _THREAD_ENV:
            os.environ.setdefault(key, "1")
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class ProcessExecutor:
    """A pool of spawned worker processes (``workers=None`` → ``os.cpu_count()``) with per-item timeouts.

    Workers start on first use and are kept across ``map`` calls; a worker that overruns an item's timeout or
    dies is killed and replaced, and that item's Outcome records why. Use as a context manager or call close().
    """

    def __init__(self, workers: int | None = None, *, progress: bool = True) -> None:
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.progress = progress
        self._context = mp.get_context("spawn")
        self._pool: list[_Worker] = []

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        with _single_threaded_env():
            process.start()
        child.close()
        return _Worker(process, parent)

    def _kill(self, worker: _Worker) -> None:
        try:
            worker.conn.close()
        finally:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(timeout=5)

    def _replace(self, worker: _Worker) -> _Worker:
        self._kill(worker)
        fresh = self._spawn()
        self._pool[self._pool.index(worker)] = fresh
        return fresh

    def map(self, fn, items, *, timeout_s=None, desc=""):
        items = list(items)
        results: list[Outcome | None] = [None] * len(items)
        if not items:
            return []
        while len(self._pool) < min(self.workers, len(items)):
            self._pool.append(self._spawn())
        pending = iter(range(len(items)))
        done = 0
        with _progress(len(items), desc, self.progress) as bar:

            def dispatch(worker: _Worker) -> _Worker:
                """Give ``worker`` the next item (if any); a worker that cannot take it is replaced."""
                nonlocal done
                for index in pending:
                    try:
                        worker.conn.send((fn, items[index]))
                    except Exception as exc:  # unpicklable item or fn, or a dead pipe
                        results[index] = Outcome(None, f"cannot send to worker: {format_error(exc)}")
                        bar.update(1)
                        done += 1
                        worker = self._replace(worker)
                        continue
                    worker.index, worker.started = index, time.perf_counter()
                    return worker
                worker.index = None
                return worker

            for worker in list(self._pool):
                dispatch(worker)
            while done < len(items):
                busy = [w for w in self._pool if w.index is not None]
                if not busy:  # every remaining item failed to send
                    break
                now = time.perf_counter()
                wait_s = None
                if timeout_s is not None:
                    wait_s = max(0.0, min(w.started + timeout_s - now for w in busy))
                ready = wait([w.conn for w in busy], timeout=wait_s)
                now = time.perf_counter()
                for worker in busy:
                    index = worker.index
                    if worker.conn in ready:
                        try:
                            value, error, seconds = worker.conn.recv()
                            results[index] = Outcome(value, error, seconds)
                        except (EOFError, OSError):
                            worker.process.join(timeout=1)
                            code = worker.process.exitcode
                            results[index] = Outcome(
                                None, f"worker died (exit code {code})", now - worker.started
                            )
                            worker = self._replace(worker)
                    elif timeout_s is not None and now - worker.started >= timeout_s:
                        results[index] = Outcome(None, _timeout_text(timeout_s), now - worker.started)
                        worker = self._replace(worker)
                    else:
                        continue
                    done += 1
                    bar.update(1)
                    worker.index = None
                    dispatch(worker)
        return [r if r is not None else Outcome(None, "not run") for r in results]

    def close(self) -> None:
        """Stop every worker (politely, then by force)."""
        for worker in self._pool:
            try:
                worker.conn.send(None)
            except Exception:
                pass
        for worker in self._pool:
            worker.process.join(timeout=2)
            self._kill(worker)
        self._pool = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
