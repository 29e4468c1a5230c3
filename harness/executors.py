"""Choosing an executor for the metrics' per-structure work: in-process, the local process pool, or Dask."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from harness.parallel import ProcessExecutor, SerialExecutor

if TYPE_CHECKING:
    from harness.parallel_dask import DaskExecutor

__all__ = ["default_executor"]


def default_executor(
    workers: int | None = None, *, progress: bool = True, kind: str = "process", scheduler: str | None = None
) -> SerialExecutor | ProcessExecutor | DaskExecutor:
    """``SerialExecutor`` for one worker, else a ``ProcessExecutor`` (``None`` → one per core); ``kind="dask"``
    or a ``scheduler`` address gives a ``DaskExecutor`` (a local cluster, or that scheduler's)."""
    if kind == "dask" or scheduler is not None:
        from harness.parallel_dask import DaskExecutor

        return DaskExecutor(workers, scheduler=scheduler, progress=progress)
    if kind != "process":
        raise ValueError(f"unknown executor {kind!r}: expected 'process' or 'dask'")
    count = workers or os.cpu_count() or 1
    if count <= 1:
        return SerialExecutor(progress=progress)
    return ProcessExecutor(count, progress=progress)
