"""What a run cost across every invocation that contributed to it: wall and CPU time, peak memory, per phase.

A long run is killed and resumed; its batches and relaxations survive, and so must the time spent on them. Each
``bench run`` / ``bench evaluate`` invocation keeps one line in ``<run dir>/invocations.jsonl`` (the file rewritten
atomically): written when it starts, brought up to date every ``HEARTBEAT_S`` seconds while it runs, and final when
it ends, interrupted or not. A process killed outright (SIGKILL, the out-of-memory killer, a session ending) cannot
write its end, so its line keeps the last heartbeat's figures and ``"ended": null``: at most a heartbeat of its cost
is lost, not all of it. Each line names the CPU it ran on, since a long run's invocations may run on different
machines. The record sums the lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.io import atomic_write_text
from harness.provenance import cpu_name

__all__ = ["HEARTBEAT_S", "LEDGER_NAME", "Invocation", "TreeMemory", "beating", "ledger_timings", "ledger_totals",
           "read_ledger", "working_elsewhere"]

LEDGER_NAME = "invocations.jsonl"
HEARTBEAT_S = 60.0
STALE_HEARTBEATS = 3  # a line not updated for this many heartbeats belongs to a process that is gone


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, of its finished children and of its live descendants (worker
    pools still running). The live ones are listed first: a worker that ends in between is then missed, not counted
    twice."""
    import psutil

    live = 0.0
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended since the listing: it is in RUSAGE_CHILDREN below, or lost with its parent
            continue
        live += times.user + times.system
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime + live


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


def beating(lines: list[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]] | None:
    """The lines whose heartbeat is recent (an invocation at work, as far as the files can say); None where no line
    has heartbeats (a ledger from before them, or none), so nothing can be said."""
    with_heartbeats = [line for line in lines if "ended" in line]
    if not with_heartbeats:
        return None
    now = time.time() if now is None else now
    return [line for line in with_heartbeats if line["ended"] is None
            and now - datetime.fromisoformat(line["updated"]).timestamp() <= STALE_HEARTBEATS * HEARTBEAT_S]


def working_elsewhere(run_dir: Path) -> list[dict[str, Any]]:
    """Other processes of this machine at work on ``run_dir`` now: a recent heartbeat from a pid that is alive and
    not this one. Two at once would relax the same structures twice, and two MP-20 evaluations at once have been
    killed for memory here."""
    return [line for line in beating(read_ledger(run_dir)) or [] if line["pid"] != os.getpid() and _alive(line["pid"])]


def _alive(pid: int) -> bool:
    """A running process (a killed one its parent has not reaped yet is a zombie, not alive)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Invocation:
    """One invocation's costs; use as a context manager around the work, and ``phase(name)`` around each phase.

    Its ledger line is written on entry, rewritten every ``heartbeat_s`` seconds by a daemon thread (the line of a
    phase still open counts the phase's time so far) and written a last time on exit, with ``"ended"``
    ``"finished"`` or ``"interrupted"``."""

    def __init__(self, run_dir: Path, command: str, *, heartbeat_s: float = HEARTBEAT_S):
        self.run_dir = Path(run_dir)
        self.command = command
        self.heartbeat_s = heartbeat_s
        self.id = secrets.token_hex(6)
        self.phases: dict[str, float] = {}
        self._open: dict[str, float] = {}  # phase -> perf_counter at its start
        self._lock = threading.Lock()  # phases and the ledger file, between the work and the heartbeat
        self._wall0 = self._cpu0 = 0.0
        self._started = ""
        self._memory = TreeMemory()
        self._cpu = cpu_name()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> Invocation:
        self._wall0, self._cpu0 = time.perf_counter(), _cpu_seconds()
        self._started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._memory.start()
        self._write(self.current(ended=None))
        self._heartbeat = threading.Thread(target=self._beat, name="xtalbench-ledger-heartbeat", daemon=True)
        self._heartbeat.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._write(self.current(ended=None))
            except (OSError, ValueError):  # a full disk, a removed folder, a ledger line broken by hand: the work
                # goes on, and the exit's write raises the error where it can be read
                continue

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time inside the block as phase ``name``, also when it raises."""
        start = time.perf_counter()
        with self._lock:
            self._open[name] = start
        try:
            yield
        finally:
            with self._lock:
                self._open.pop(name, None)
                self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    def current(self, ended: str | None = "finished") -> dict[str, Any]:
        """This invocation's ledger line now; ``ended`` None while it runs."""
        cpu_s = _cpu_seconds() - self._cpu0  # first: reading the processes can wait long for the GIL beside a
        now = time.perf_counter()  # busy main thread, and the wall time must cover it
        with self._lock:
            phases = dict(self.phases)
            for name, start in self._open.items():
                phases[name] = phases.get(name, 0.0) + now - start
        return {
            "id": self.id,
            "started": self._started,
            "command": self.command,
            "pid": os.getpid(),
            "cpu": self._cpu,
            "wall_s": round(now - self._wall0, 3),
            "cpu_s": round(cpu_s, 3),
            "max_rss_gb": _max_rss_gb(),
            "peak_tree_rss_gb": max(self._memory.peak_gb, round(self._memory.sample() / 1e9, 3)),
            "phases_s": {k: round(v, 3) for k, v in phases.items()},
            "finished": ended == "finished",
            "ended": ended,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _others(self) -> list[dict[str, Any]]:
        return [line for line in read_ledger(self.run_dir) if line.get("id") != self.id]

    def _write(self, line: dict[str, Any]) -> None:
        with self._lock:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            lines = [*self._others(), line]
            atomic_write_text(self.run_dir / LEDGER_NAME, "".join(json.dumps(x) + "\n" for x in lines))

    def totals(self) -> dict[str, Any]:
        """The ledger's totals with this invocation (still running) counted once, as if it ended now."""
        return ledger_totals([*self._others(), self.current()])

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self._memory.stop()
        self._write(self.current(ended="finished" if exc_type is None else "interrupted"))


def ledger_totals(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Summed wall and CPU time, per-phase seconds and the peak memory over ledger lines; the CPUs they ran on, and
    how many never wrote their end (killed: their last heartbeat counts; lines written before 2026-12-08, which had
    no heartbeat and no ``ended``, are not among them)."""
    phases: dict[str, float] = {}
    for line in lines:
        for key, value in (line.get("phases_s") or {}).items():
            phases[key] = phases.get(key, 0.0) + value
    return {
        "invocations": len(lines),
        "killed_invocations": sum(1 for line in lines if "ended" in line and line["ended"] is None),
        "cpus": sorted({line["cpu"] for line in lines if line.get("cpu")}),
        "wall_s": round(sum(line["wall_s"] for line in lines), 3),
        "cpu_s": round(sum(line["cpu_s"] for line in lines), 3),
        "max_rss_gb": max((line["max_rss_gb"] for line in lines), default=None),
        # invocations before 2026-12-06 did not sample it
        "peak_tree_rss_gb": max((line["peak_tree_rss_gb"] for line in lines if line.get("peak_tree_rss_gb") is not None),
                                default=None),
        "phases_s": {k: round(v, 3) for k, v in phases.items()},
    }


def ledger_timings(totals: dict[str, Any]) -> dict[str, Any]:
    """The ledger's part of a record's ``timings``, from :func:`ledger_totals` (``Invocation.totals()``)."""
    keys = ("wall_s", "cpu_s", "max_rss_gb", "peak_tree_rss_gb", "invocations", "killed_invocations", "cpus")
    return {key: totals[key] for key in keys}


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
