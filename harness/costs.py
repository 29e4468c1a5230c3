"""What a run cost across every invocation that contributed to it: wall and CPU time, peak memory, per phase.

A long run is killed and resumed; its batches and relaxations survive, and so must the time spent on them. Each
``bench run`` / ``bench evaluate`` invocation appends one line to ``<run dir>/invocations.jsonl`` when it ends,
interrupted or not (written atomically with the lines before it); the record sums them.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.io import atomic_write_text

__all__ = ["LEDGER_NAME", "Invocation", "TreeMemory", "ledger_totals", "read_ledger"]

LEDGER_NAME = "invocations.jsonl"


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (worker pools)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _max_rss_gb() -> float:
    """Peak resident memory of this process and of its largest finished child, GB (ru_maxrss is KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(peak * scale / 1e9, 3)


class TreeMemory:
    """The peak of the summed resident memory of this process and all its descendants (worker pools included),
    sampled every ``interval_s`` by a daemon thread: what the machine must hold at once, which ``ru_maxrss`` (one
    process at a time) does not say."""

    def __init__(self, interval_s: float = 1.0):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        import psutil

        root = psutil.Process()
        total = 0
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            processes = [root]
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:  # a worker that ended between the listing and the reading
                continue
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> TreeMemory:
        self.sample()
        self._thread = threading.Thread(target=self._watch, name="xtalbench-tree-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def peak_gb(self) -> float:
        return round(self.peak_bytes / 1e9, 3)


def read_ledger(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / LEDGER_NAME
    if not path.exists():
        return []
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                lines.append(json.loads(line))
            except ValueError as error:
                raise ValueError(f"{path}: line {number} is not JSON ({error})") from error
    return lines


class Invocation:
    """One invocation's costs; use as a context manager around the work, ``phase`` around each phase."""

    def __init__(self, run_dir: Path, command: str):
        self.run_dir = Path(run_dir)
        self.command = command
        self.phases: dict[str, float] = {}
        self._wall0 = self._cpu0 = 0.0
        self._started = ""
        self._memory = TreeMemory()

    def __enter__(self) -> Invocation:
        self._wall0, self._cpu0 = time.perf_counter(), _cpu_seconds()
        self._started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._memory.start()
        return self

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + float(seconds)

    def current(self, finished: bool) -> dict[str, Any]:
        return {
            "started": self._started,
            "command": self.command,
            "pid": os.getpid(),
            "wall_s": round(time.perf_counter() - self._wall0, 3),
            "cpu_s": round(_cpu_seconds() - self._cpu0, 3),
            "max_rss_gb": _max_rss_gb(),
            "peak_tree_rss_gb": max(self._memory.peak_gb, round(self._memory.sample() / 1e9, 3)),
            "phases_s": {k: round(v, 3) for k, v in self.phases.items()},
            "finished": finished,
        }

    def totals(self) -> dict[str, Any]:
        """The ledger's totals with this invocation (still running) included."""
        return ledger_totals([*read_ledger(self.run_dir), self.current(finished=True)])

    def __exit__(self, exc_type, exc, tb) -> None:
        self._memory.stop()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lines = [*read_ledger(self.run_dir), self.current(finished=exc_type is None)]
        atomic_write_text(self.run_dir / LEDGER_NAME, "".join(json.dumps(line) + "\n" for line in lines))


def ledger_totals(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Summed wall and CPU time, per-phase seconds and the peak memory over ledger lines."""
    phases: dict[str, float] = {}
    for line in lines:
        for key, value in (line.get("phases_s") or {}).items():
            phases[key] = phases.get(key, 0.0) + value
    return {
        "invocations": len(lines),
        "wall_s": round(sum(line["wall_s"] for line in lines), 3),
        "cpu_s": round(sum(line["cpu_s"] for line in lines), 3),
        "max_rss_gb": max((line["max_rss_gb"] for line in lines), default=None),
        # invocations before 2026-12-06 did not sample it
        "peak_tree_rss_gb": max((line["peak_tree_rss_gb"] for line in lines if line.get("peak_tree_rss_gb") is not None),
                                default=None),
        "phases_s": {k: round(v, 3) for k, v in phases.items()},
    }


def cost_metrics(generation_s: float | None, n_samples: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """SymmBFN's cost definitions: seconds per requested sample, per stable and per S.U.N. structure."""
    if generation_s is None or n_samples == 0:
        return {"seconds_per_sample": None, "seconds_per_stable": None, "seconds_per_sun": None}
    per_sample = generation_s / n_samples

    def per(rate):
        return per_sample / rate if rate else None

    return {
        "seconds_per_sample": per_sample,
        "seconds_per_stable": per(metrics.get("stable_rate")),
        "seconds_per_sun": per(metrics.get("sun_rate")),
    }
