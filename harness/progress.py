"""``bench progress RUN_DIR...``: how far a run in another process (or an earlier session) has got, read from disk.

Long runs here are started in the background (``nohup bench run ... --no-progress``) and take hours, mostly in
CHGNet relaxations; their only trace is the files they write as each piece finishes. This module reads those
files and nothing else, so it can be asked at any time without disturbing the run:

* generation: finished batch files (``batches/NNNNN.json.gz``; per target under ``targets/<name>/`` for the
  conditional task) against the batches ``run.json`` asks for, or done when the run's samples file exists;
* relaxation: finished result files under ``stability/**/relax-*/`` against the subset the run relaxes (the tier's
  ``n_relax``; every sample of every target for the conditional task; a custom tier's ``--n-relax`` is not in
  ``run.json``, so there they are counted, not totalled), relaxations carried by ``bench pack`` and not yet written
  back included, with the rate over the last ``window`` seconds and the time left at that rate (a file a resumed run
  wrote back from the archive is newer than the archive and is not counted as finished in the window);
* the record: written or not;
* the invocations that worked on it (``invocations.jsonl``): their summed wall and CPU time, the CPUs, and which is
  running now (its line's heartbeat is recent) or was killed outright (its heartbeat stopped without an end), so
  "is the run going?" has an answer where the ledger has heartbeats (since 2026-12-08).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.costs import beating, ledger_totals, read_ledger
from harness.records import RECORD_NAME, SAMPLES_NAME
from harness.stability.carry import ARCHIVE_NAME, BATCHES_NAME, packed_paths

DEFAULT_WINDOW_S = 1200.0


class ProgressError(ValueError):
    """A folder without a readable ``run.json``, or a record or packed archive in it that cannot be read."""


@dataclass(frozen=True)
class Stage:
    name: str
    done: int
    total: int | None  # None where the run does not fix it in advance (e.g. the optimisation task's decodes)
    unit: str
    recent: int = 0  # finished within the window
    window_s: float = DEFAULT_WINDOW_S

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def left_s(self) -> float | None:
        """Seconds left at the rate of the last window; None when nothing finished in it or the total is open."""
        if self.total is None or self.finished or self.recent <= 0:
            return None
        return (self.total - self.done) * self.window_s / self.recent


def _read_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ProgressError(f"{run_dir}: no run.json, so no bench run has claimed this folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ProgressError(f"{path}: unreadable ({exc})") from None


def _recent(paths: list[Path], now: float, window_s: float, run_dir: Path, packed: set[str], archive: str) -> int:
    """How many of ``paths`` were finished within the window. A packed file newer than its archive was written
    back from the archive when the run resumed (``carry.restore``), so it was finished in an earlier session."""
    try:
        archived_at = (run_dir / archive).stat().st_mtime
    except FileNotFoundError:
        archived_at = float("inf")
    count = 0
    for path in paths:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # replaced atomically while we looked
            continue
        restored = mtime >= archived_at and path.relative_to(run_dir).as_posix() in packed
        if now - mtime <= window_s and not restored:
            count += 1
    return count


def _generation(run_dir: Path, params: dict[str, Any], packed_batches: set[str], now: float,
                window_s: float) -> Stage:
    batch_size = int(params.get("batch_size") or 0)
    if params.get("task") == "conditional":
        per_target = int(params["n_per_target"])
        folders = [run_dir / "targets" / _target_folder(t) for t in params["targets"]]
        total = len(folders) * -(-per_target // batch_size) if batch_size else None
        files = [p for folder in folders for p in sorted((folder / "batches").glob("*.json.gz"))]
    elif "n_samples" in params:
        total = -(-int(params["n_samples"]) // batch_size) if batch_size else None
        files = sorted((run_dir / "batches").glob("*.json.gz"))
    elif params.get("task") == "optimise":
        return _optimise_chunks(run_dir, int(params["n_starts"]), now, window_s)
    else:
        return Stage("generation", 0, None, "batches")
    names = {p.relative_to(run_dir).as_posix() for p in files}
    packed = packed_batches - names
    recent = _recent(files, now, window_s, run_dir, packed_batches, BATCHES_NAME)
    return Stage("generation", len(files) + len(packed), total, "batches", recent, window_s)


def _optimise_chunks(run_dir: Path, n_starts: int, now: float, window_s: float) -> Stage:
    """The optimisation task's chunks of starts: all when ``decodes.json.gz`` is written, else as many as the partial
    file holds."""
    import gzip

    from harness.optimise import DECODES_NAME, PARTIAL_DECODES_NAME
    from harness.tasks import OPTIMISE_CHUNK

    total = -(-n_starts // OPTIMISE_CHUNK)
    if (run_dir / DECODES_NAME).exists():
        return Stage("generation", total, total, "chunks of starts")
    partial = run_dir / PARTIAL_DECODES_NAME
    if not partial.exists():
        return Stage("generation", 0, total, "chunks of starts", 0, window_s)
    try:
        payload = json.loads(gzip.decompress(partial.read_bytes()))
        rows = len(payload["decodes"])
    except FileNotFoundError:  # finished and removed while we looked
        return Stage("generation", total, total, "chunks of starts")
    except (OSError, ValueError, KeyError) as exc:
        raise ProgressError(f"{partial}: unreadable ({exc})") from None
    recent = sum(1 for t in payload.get("finished_at", []) if now - float(t) <= window_s)
    return Stage("generation", -(-rows // OPTIMISE_CHUNK), total, "chunks of starts", recent, window_s)


def _target_folder(target: Any) -> str:
    from harness.conditional import target_name
    from harness.tasks import PropertyTarget

    prop, value = target
    return target_name(PropertyTarget(prop, float(value)))


def _relaxation_total(params: dict[str, Any]) -> int | None:
    from harness.protocol import TIERS

    if params.get("task") == "conditional":
        return int(params["n_per_target"]) * len(params["targets"])
    if params.get("task") is not None or "n_samples" not in params:
        return None
    tier = params.get("tier")
    if tier in TIERS:
        return TIERS[tier].n_relax
    return None  # a custom tier's --n-relax is not in run.json


def _relaxation(run_dir: Path, params: dict[str, Any], packed_relaxations: set[str], now: float,
                window_s: float) -> Stage:
    files = [p for p in (run_dir / "stability").rglob("relax-*/*.json") if p.is_file()]
    names = {p.relative_to(run_dir).as_posix() for p in files}
    packed = packed_relaxations - names
    return Stage("relaxation", len(files) + len(packed), _relaxation_total(params), "structures",
                 _recent(files, now, window_s, run_dir, packed_relaxations, ARCHIVE_NAME), window_s)


def progress(run_dir: Path, window_s: float = DEFAULT_WINDOW_S, now: float | None = None) -> dict[str, Any]:
    """The run's settings, its stages and whether its record exists."""
    run_dir = Path(run_dir)
    params = _read_run(run_dir)
    now = time.time() if now is None else now
    record = _read_record(run_dir)
    try:
        packed_relaxations, packed_batches = packed_paths(run_dir)
    except ValueError as exc:
        raise ProgressError(str(exc)) from None
    generation = _generation(run_dir, params, packed_batches, now, window_s)
    relaxation = _relaxation(run_dir, params, packed_relaxations, now, window_s)
    if (record is not None or (run_dir / SAMPLES_NAME).exists()) and generation.total is not None:
        generation = Stage("generation", generation.total, generation.total, generation.unit, 0, window_s)
    if record is not None:  # a clean clone has no stability/ folder: the record says what was relaxed
        n_relaxed = _recorded_relaxations(record)
        if n_relaxed is not None:
            relaxation = Stage("relaxation", int(n_relaxed), int(n_relaxed), relaxation.unit, 0, window_s)
    return {"run_dir": str(run_dir), "params": params, "stages": [generation, relaxation],
            "record": record is not None, "invocations": _invocations(run_dir, now)}


def _invocations(run_dir: Path, now: float) -> dict[str, Any]:
    """The ledger's totals; ``running``: the pids whose line has a recent heartbeat, or None where no line has
    heartbeats (a ledger from before them, or none), so nothing can be said."""
    try:
        lines = read_ledger(run_dir)
    except ValueError as exc:
        raise ProgressError(str(exc)) from None
    totals = ledger_totals(lines)
    recent = beating(lines, now)
    running = None if recent is None else [line["pid"] for line in recent]
    return {**totals, "running": running, "killed": totals["killed_invocations"] - len(running or [])}


def _recorded_relaxations(record: dict[str, Any]) -> int | None:
    """``n_relaxed`` of the record, summed over the targets of a conditional one; None where it has none."""
    targets = ((record.get("task") or {}).get("conditional") or {}).get("targets")
    if targets:
        counts = [(t.get("metrics") or {}).get("n_relaxed") for t in targets]
        return sum(counts) if all(c is not None for c in counts) else None
    return (record.get("metrics") or {}).get("n_relaxed")


def _read_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RECORD_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProgressError(f"{path}: unreadable ({exc})") from None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def format_progress(state: dict[str, Any]) -> str:
    params = state["params"]
    what = ", ".join(str(params[k]) for k in ("plugin", "dataset", "task", "tier") if params.get(k))
    lines = [f"{state['run_dir']}  ({what}, seed {params.get('seed')})"]
    moving = any(stage.recent for stage in state["stages"])  # a stage waits while another works (e.g. the
    # conditional task samples a target's batches, then relaxes them, then samples the next target's)
    running = state["invocations"]["running"]
    if moving or running:
        hint = ""
    elif running is None:
        hint = " (is the run going?)"
    else:
        hint = " (no bench process is working on it)"
    for stage in state["stages"]:
        if stage.total is None:
            text = f"{stage.done:,} {stage.unit}" if stage.done else "nothing to count"
        else:
            text = f"{stage.done:,} of {stage.total:,} {stage.unit}"
            if stage.finished:
                text += ": done"
        if not stage.finished and stage.done:
            window = _minutes(stage.window_s)
            if stage.recent:
                text += f"; {stage.recent:,} in the last {window}"
                left = stage.left_s()
                if left is not None:
                    text += f", about {_minutes(left)} left at that rate"
            else:
                text += f"; none finished in the last {window}" + hint
        lines.append(f"  {stage.name:<11} {text}")
    lines.append(f"  {'record':<11} {'written' if state['record'] else 'not yet written'}")
    lines.append(f"  {'cost':<11} {_cost_text(state['invocations'])}")
    return "\n".join(lines)


def _cost_text(ledger: dict[str, Any]) -> str:
    n = ledger["invocations"]
    if not n:
        return "no invocation has written its line yet"
    text = (f"{n} invocation{'s' if n > 1 else ''}, {ledger['wall_s'] / 3600:.1f} h wall, "
            f"{ledger['cpu_s'] / 3600:.1f} CPU-hours")
    if ledger["cpus"]:
        text += f" on {' and '.join(ledger['cpus'])}"
    if ledger["running"]:
        text += f"; running now: pid {', '.join(str(pid) for pid in ledger['running'])}"
    if ledger["killed"]:
        text += f"; {ledger['killed']} killed outright (counted to its last heartbeat)"
    return text
