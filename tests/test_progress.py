"""bench progress: what a run in the background has finished, read from the files it writes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.progress import ProgressError, format_progress, progress
from harness.runner import generate
from harness.stability.carry import pack
from plugins.baselines.trainset import TrainsetGenerator

REPO = Path(__file__).resolve().parents[1]
NOW = 1_900_000_000.0


def _relaxation(folder: Path, index: int, mtime: float) -> None:
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice.cubic(4.0 + 0.01 * index), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    path = folder / f"{index}.json"
    path.write_text(json.dumps({"energy_per_atom": -3.0, "structure": structure.as_dict(), "converged": True,
                                "steps": 12, "error": None, "seconds": 1.0, "input_sha256": f"{index:064x}"}))
    os.utime(path, (mtime, mtime))


@pytest.fixture
def unfinished(tiny_dataset, tmp_path):
    """A quick-tier run stopped in its relaxations: 2 of its 4 batches on disk, 30 relaxations finished (10 an hour
    ago, 20 in the last minutes), of which 5 survive only in the archive `bench pack` wrote."""
    run_dir = tmp_path / "run"
    generator = TrainsetGenerator("tiny")
    generator.load(None, "cpu")
    generate(generator, 10, 7, 5, run_dir, progress=False)
    (run_dir / "run.json").write_text(json.dumps({"plugin": "trainset", "dataset": "tiny", "n_samples": 20,
                                                  "seed": 7, "batch_size": 5, "checkpoint_sha256": None,
                                                  "tier": "quick"}))
    relax = run_dir / "stability" / "relax-0123456789ab"
    relax.mkdir(parents=True)
    for i in range(30):
        _relaxation(relax, i, NOW - 3600 if i < 10 else NOW - 60)
    pack(run_dir)
    os.utime(run_dir / "relaxations.jsonl.gz", (NOW - 30, NOW - 30))  # packed after the last of them finished
    for i in range(25, 30):
        (relax / f"{i}.json").unlink()
    return run_dir


def test_an_unfinished_run_counts_files_and_packed_results_and_times_what_is_left(unfinished):
    state = progress(unfinished, window_s=1200, now=NOW)
    generation, relaxation = state["stages"]
    assert (generation.done, generation.total) == (2, 4)
    assert (relaxation.done, relaxation.total, relaxation.recent) == (30, 100, 15)
    assert relaxation.left_s() == pytest.approx(70 * 1200 / 15)
    text = format_progress(state)
    assert "2 of 4 batches" in text and "30 of 100 structures; 15 in the last 20 min" in text
    assert "about 1.6 h left" in text and "not yet written" in text
    # the batches are older than the window, but the relaxations move: the run is going
    assert "2 of 4 batches; none finished in the last 20 min\n" in text and "is the run going" not in text


def test_results_a_resume_wrote_back_from_the_archive_are_not_counted_as_finished_lately(unfinished):
    from harness.stability.carry import restore

    assert restore(unfinished) == 5  # what a resumed run does first: the 5 archived-only results come back
    relax = unfinished / "stability" / "relax-0123456789ab"
    for i in range(25, 30):
        os.utime(relax / f"{i}.json", (NOW - 10, NOW - 10))  # written back after the archive, within the window
    relaxation = progress(unfinished, window_s=1200, now=NOW)["stages"][1]
    assert (relaxation.done, relaxation.recent) == (30, 15)
    _relaxation(relax, 30, NOW - 5)  # one the resumed run finished itself
    relaxation = progress(unfinished, window_s=1200, now=NOW)["stages"][1]
    assert (relaxation.done, relaxation.recent) == (31, 16)


def test_a_run_with_nothing_finished_lately_is_flagged(unfinished):
    text = format_progress(progress(unfinished, window_s=1200, now=NOW + 7200))
    assert "none finished in the last 20 min (is the run going?)" in text


def _ledger_line(pid: int, updated: float, ended: str | None, cpu: str, wall_s: float) -> dict:
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(updated, timezone.utc).isoformat(timespec="seconds")
    return {"id": f"{pid:012x}", "started": stamp, "command": "bench run", "pid": pid, "cpu": cpu, "wall_s": wall_s,
            "cpu_s": 2 * wall_s, "max_rss_gb": 1.0, "peak_tree_rss_gb": 2.0, "phases_s": {"evaluation": wall_s},
            "finished": ended == "finished", "ended": ended, "updated": stamp}


def _write_ledger(run_dir: Path, *lines: dict) -> None:
    (run_dir / "invocations.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_the_ledger_says_whether_the_run_is_going_and_what_it_cost(unfinished):
    """A recent heartbeat: running, however long no file has finished; a heartbeat that stopped without an end: a
    process killed outright; lines from before heartbeats: nothing can be said, and the old hint stays."""
    later = NOW + 7200  # nothing has finished within the window
    old = {k: v for k, v in _ledger_line(11, NOW - 9000, None, "AMD EPYC", 3600.0).items()
           if k not in ("ended", "updated", "id", "cpu")}
    _write_ledger(unfinished, old, _ledger_line(22, later - 30, None, "Intel Xeon", 1800.0))
    text = format_progress(progress(unfinished, window_s=1200, now=later))
    assert "none finished in the last 20 min\n" in text and "is the run going" not in text
    assert "cost        2 invocations, 1.5 h wall, 3.0 CPU-hours on Intel Xeon; running now: pid 22" in text
    _write_ledger(unfinished, old, _ledger_line(22, later - 3600, None, "Intel Xeon", 1800.0),
                  _ledger_line(33, later - 600, "interrupted", "AMD EPYC", 360.0))
    text = format_progress(progress(unfinished, window_s=1200, now=later))
    assert "none finished in the last 20 min (no bench process is working on it)" in text
    assert "3 invocations, 1.6 h wall, 3.2 CPU-hours on AMD EPYC and Intel Xeon; 1 killed outright" in text
    _write_ledger(unfinished, old)
    assert "(is the run going?)" in format_progress(progress(unfinished, window_s=1200, now=later))
    (unfinished / "invocations.jsonl").write_text("{broken\n")
    with pytest.raises(ProgressError, match=r"invocations\.jsonl: line 1 is not JSON"):
        progress(unfinished, now=later)


def test_packed_batches_count_in_a_fresh_clone(unfinished):
    from harness.stability.carry import pack_batches

    pack_batches(unfinished)
    shutil.rmtree(unfinished / "batches")
    generation = progress(unfinished, now=NOW)["stages"][0]
    assert (generation.done, generation.total) == (2, 4)


def test_a_conditional_run_counts_every_target(tiny_dataset, tmp_path):
    run_dir = tmp_path / "conditional"
    generator = TrainsetGenerator("tiny")
    generator.load(None, "cpu")
    generate(generator, 5, 0, 5, run_dir / "targets" / "formation_energy_per_atom=-2.8", progress=False)
    (run_dir / "run.json").write_text(json.dumps({
        "plugin": "symmbfn", "dataset": "tiny", "task": "conditional",
        "targets": [["formation_energy_per_atom", -0.5], ["formation_energy_per_atom", -2.8]],
        "n_per_target": 10, "seed": 0, "batch_size": 5, "checkpoint_sha256": None}))
    generation, relaxation = progress(run_dir, now=NOW)["stages"]
    assert (generation.done, generation.total) == (1, 4)
    assert (relaxation.done, relaxation.total) == (0, 20)


def test_an_optimise_run_counts_its_chunks_of_starts(tmp_path):
    run_dir = tmp_path / "optimise"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"plugin": "symat", "dataset": "perov5", "task": "optimise",
                                                  "n_starts": 25, "seed": 0, "checkpoint_sha256": None}))
    assert (progress(run_dir, now=NOW)["stages"][0].done, progress(run_dir, now=NOW)["stages"][0].total) == (0, 3)
    partial = {"decodes": [[None] * 11] * 20, "predicted": None, "seconds": 9.0,
               "finished_at": [NOW - 3600, NOW - 120]}
    (run_dir / "decodes.partial.json.gz").write_bytes(gzip.compress(json.dumps(partial).encode()))
    generation = progress(run_dir, now=NOW)["stages"][0]
    assert (generation.done, generation.total, generation.unit, generation.recent) == (2, 3, "chunks of starts", 1)
    assert generation.left_s() == pytest.approx(generation.window_s)  # one chunk left at one per window
    (run_dir / "decodes.partial.json.gz").unlink()
    (run_dir / "decodes.json.gz").write_bytes(gzip.compress(b"{}"))
    assert progress(run_dir, now=NOW)["stages"][0].finished


@pytest.mark.parametrize("record, relaxed", [("results/perov5/symat/full-seed0-f988ba824d", 1000),
                                             ("results/mp20/symmbfn/conditional-n100-seed0-30732aa640", 300)])
def test_a_finished_record_in_a_clean_clone_reads_its_counts_from_the_record(tmp_path, record, relaxed):
    run_dir = tmp_path / "clone"
    run_dir.mkdir()
    for name in ("run.json", "record.json", "invocations.jsonl"):  # no batches/ or stability/: git does not track
        shutil.copy(REPO / record / name, run_dir / name)
    generation, relaxation = progress(run_dir, now=NOW)["stages"]
    assert generation.finished
    assert (relaxation.done, relaxation.total) == (relaxed, relaxed)
    text = format_progress(progress(run_dir, now=NOW))
    assert "\n  record      written\n  cost        " in text and "h wall" in text and "running now" not in text


def test_a_broken_archive_names_the_file_and_line(unfinished):
    with gzip.open(unfinished / "relaxations.jsonl.gz", "at") as handle:
        handle.write("not json\n")
    with pytest.raises(ProgressError, match=r"relaxations\.jsonl\.gz line 31"):
        progress(unfinished, now=NOW)


def test_the_cli_reports_good_folders_and_refuses_the_rest(unfinished, tmp_path, capsys):
    assert main(["progress", str(unfinished), str(tmp_path / "nothing")]) == 2
    captured = capsys.readouterr()
    assert "30 of 100 structures" in captured.out
    assert "nothing: no run.json" in captured.err
    assert main(["progress", "--window", "0", str(unfinished)]) == 2
