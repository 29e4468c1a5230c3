"""A Dask executor: the same ``map`` as :class:`~harness.parallel.ProcessExecutor`, on a local or remote cluster.

``DaskExecutor()`` starts a ``distributed.LocalCluster`` (one single-threaded worker process per core) and
closes it with the executor; ``DaskExecutor(scheduler="tcp://host:port")`` joins an existing cluster (for
example one dask-jobqueue started on Slurm) and leaves it running.

Timeouts: a Dask task runs in a worker *thread*, where SIGALRM cannot be installed (``_alarm`` would be a
no-op) and a running task cannot be stopped from outside. So each worker thread keeps one
``ProcessExecutor(1)`` child process and runs its items there: an item that overruns ``timeout_s`` has its
child killed and replaced on that worker, exactly as in the process pool, and the other items never wait on
it. Outcomes (values, error texts, timeouts, a dying child) are therefore the process pool's own. Items travel
pickled and are unpickled only in the child, so a worker process stays small (it never imports ``fn``'s module);
xtalbench must be installed where the workers run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
from multiprocessing.reduction import ForkingPickler

from harness.parallel import Outcome, ProcessExecutor, _progress, _single_threaded_env, format_error

__all__ = ["DaskExecutor"]

# Worker side: one child executor per worker thread, kept across tasks (a spawn costs seconds of imports).
_CHILDREN: dict[int, ProcessExecutor] = {}
_CHILDREN_LOCK = threading.Lock()


def _thread_child() -> ProcessExecutor:
    key = threading.get_ident()
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(key)
        if child is None:
            # Dask's nanny starts workers as daemonic processes, which multiprocessing forbids to have children.
            # The flag only guards that check; the child is daemonic itself and exits when its pipe closes.
            if mp.current_process().daemon:
                mp.current_process().daemon = False
            child = _CHILDREN[key] = ProcessExecutor(1, progress=False)
    return child


def _unpickle_and_call(payload: bytes):
    """Child side: the item's ``(fn, item)`` is unpickled only here, so Dask workers never import ``fn``'s module."""
    fn, item = pickle.loads(payload)
    return fn(item)


def _run_item(payload: bytes, timeout_s: float | None) -> Outcome:
    """Worker side: run one pickled ``(fn, item)`` in this thread's child process, under ``timeout_s``."""
    return _thread_child().map(_unpickle_and_call, [payload], timeout_s=timeout_s)[0]


def _stop_children() -> int:
    """Worker side: stop this worker's child processes; returns how many there were."""
    with _CHILDREN_LOCK:
        children = list(_CHILDREN.values())
        _CHILDREN.clear()
    for child in children:
        child.close()
    return len(children)


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError("the Dask executor needs dask: pip install 'xtalbench[dask]'") from exc
    return distributed


class DaskExecutor:
    """Maps items over Dask workers with the process pool's outcomes and per-item timeouts.

    ``workers`` sizes the local cluster (``None`` → one per core); with ``scheduler`` it is read from the
    cluster (its total worker threads when the executor connects). Use as a context manager or call close().
    """

    def __init__(self, workers: int | None = None, *, scheduler: str | None = None, progress: bool = True) -> None:
        distributed = _import_distributed()
        self.progress = progress
        self.scheduler = scheduler
        self._cluster = None
        if scheduler is None:
            n_workers = max(1, int(workers or os.cpu_count() or 1))
            with _single_threaded_env():  # the worker processes inherit the environment when they start
                self._cluster = distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                )
            try:
                self._client = distributed.Client(self._cluster, set_as_default=False)
            except BaseException:
                self._cluster.close()
                raise
            self.workers = n_workers
        else:
            self._client = distributed.Client(scheduler, set_as_default=False)
            self.workers = max(1, sum(self._client.nthreads().values()))

    @property
    def scheduler_address(self) -> str:
        return self._client.scheduler.address

    def map(self, fn, items, *, timeout_s=None, desc=""):
        distributed = _import_distributed()
        items = list(items)
        results: list[Outcome | None] = [None] * len(items)
        payloads: dict[int, bytes] = {}
        with _progress(len(items), desc, self.progress) as bar:
            for index, item in enumerate(items):
                try:
                    # Pickled here as the process pool's pipe would: an unpicklable item fails the same way.
                    payloads[index] = bytes(ForkingPickler.dumps((fn, item)))
                except Exception as exc:
                    results[index] = Outcome(None, f"cannot send to worker: {format_error(exc)}")
                    bar.update(1)
            submitted = self._client.map(_run_item, list(payloads.values()), timeout_s=timeout_s, pure=False)
            futures = dict(zip(submitted, payloads))
            try:
                for future in distributed.as_completed(futures, loop=self._client.loop):
                    try:
                        results[futures[future]] = future.result()
                    except Exception as exc:  # the Dask worker itself was lost (KilledWorker) or cancelled
                        results[futures[future]] = Outcome(None, f"worker died ({format_error(exc)})")
                    future.release()
                    bar.update(1)
            finally:  # interrupted: stop what is still queued or running
                unfinished = [f for f in futures if not f.done()]
                if unfinished:
                    self._client.cancel(unfinished)
        return [r if r is not None else Outcome(None, "not run") for r in results]

    def close(self) -> None:
        """Stop the workers' child processes and disconnect; a local cluster is shut down too."""
        if self._client is None:
            return
        try:
            self._client.run(_stop_children)
        except Exception:
            pass  # workers already gone
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
