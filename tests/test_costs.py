"""Cost accounting: the process tree's peak memory, the atom budget per relaxer call."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.costs import Invocation, TreeMemory, ledger_totals, read_ledger

HOLD = "import sys, time; block = bytearray(300_000_000); block[::4096] = b'x' * len(block[::4096]); " \
       "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)"


def test_tree_memory_counts_a_child_process():
    """A child holding 300 MB is in the tree's peak; this process's own ``ru_maxrss`` never sees it."""
    memory = TreeMemory(interval_s=0.05).start()
    alone = memory.sample()
    child = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        child.kill()
        child.wait()
    memory.stop()
    assert memory.peak_bytes - alone >= 0.28e9


def test_invocations_record_the_tree_peak_and_the_ledger_keeps_the_largest(tmp_path):
    with Invocation(tmp_path, "first"):
        child = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # at least one sample of the watcher
        child.kill()
        child.wait()
    with Invocation(tmp_path, "second"):
        pass
    first, second = read_ledger(tmp_path)
    assert first["peak_tree_rss_gb"] >= second["peak_tree_rss_gb"] + 0.28
    assert ledger_totals([first, second])["peak_tree_rss_gb"] == first["peak_tree_rss_gb"]
    # ledger lines written before the sampler existed have none; the totals say so instead of guessing
    assert ledger_totals([{k: v for k, v in second.items() if k != "peak_tree_rss_gb"}])["peak_tree_rss_gb"] is None


@pytest.mark.parametrize(("sizes", "batch", "budget", "spans"), [
    ([10] * 70, 32, None, [(0, 32), (32, 64), (64, 70)]),
    ([10] * 70, 32, 128, [(k, min(k + 12, 70)) for k in range(0, 70, 12)]),
    ([10, 300, 5, 5, 100, 200], 32, 128, [(0, 1), (1, 2), (2, 5), (5, 6)]),
    ([], 32, 128, []),
])
def test_model_calls_hold_at_most_the_batch_and_the_atom_budget(sizes, batch, budget, spans):
    from harness.relaxer import _spans

    assert _spans(sizes, batch, budget) == spans
    covered = [k for start, stop in spans for k in range(start, stop)]
    assert covered == list(range(len(sizes)))


def test_an_atom_budget_splits_model_calls_without_changing_predictions():
    """CHGNet on three structures in one call and in three: the same energies, forces and stresses up to float32
    summation order."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    from harness.stability.relax import load_relaxer

    structures = [
        Structure(Lattice.cubic(4.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.52]]),
        Structure(Lattice.hexagonal(2.5, 6.7), ["C"] * 4, [[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25],
                                                           [2 / 3, 1 / 3, 0.75]]),
    ]
    relaxer = load_relaxer()
    whole = relaxer.predict(structures, "efs", 32)
    split = relaxer.predict(structures, "efs", 32, max_atoms=4)
    for a, b in zip(whole, split, strict=True):
        assert abs(float(a["e"]) - float(b["e"])) < 1e-5
        assert np.allclose(a["f"], b["f"], atol=1e-4)
        assert np.allclose(a["s"], b["s"], atol=1e-3)


def test_a_running_invocation_keeps_its_line_up_to_date_and_replaces_it_at_the_end(tmp_path):
    """One line per invocation: written at the start, refreshed by the heartbeat with the open phase's time so far,
    and final at the end; a later invocation adds its own line beside it."""
    with Invocation(tmp_path, "work", heartbeat_s=0.1) as invocation:
        assert [line["ended"] for line in read_ledger(tmp_path)] == [None]
        with invocation.phase("evaluation"):
            time.sleep(0.6)
            (beat,) = read_ledger(tmp_path)
    (final,) = read_ledger(tmp_path)
    assert beat["id"] == final["id"] == invocation.id and beat["ended"] is None
    assert 0.3 <= beat["phases_s"]["evaluation"] <= final["phases_s"]["evaluation"]
    assert final["ended"] == "finished" and final["finished"] and final["cpu"]
    with pytest.raises(RuntimeError), Invocation(tmp_path, "fails") as failing, failing.phase("generation"):
        raise RuntimeError("boom")
    first, second = read_ledger(tmp_path)
    assert first == final and second["ended"] == "interrupted" and not second["finished"]
    assert "generation" in second["phases_s"]
    totals = ledger_totals([first, second])
    assert totals["invocations"] == 2 and totals["killed_invocations"] == 0 and totals["cpus"] == [final["cpu"]]


KILLED = """
import sys, time
from harness.costs import Invocation
with Invocation(sys.argv[1], "killed", heartbeat_s=0.2) as invocation, invocation.phase("evaluation"):
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    end = time.process_time() + 60
    while time.process_time() < end:
        pass
"""


def test_an_invocation_killed_outright_leaves_its_last_heartbeat(tmp_path):
    """SIGKILL (the out-of-memory killer, a session's end) runs no exit code; the ledger still holds the invocation,
    its CPU time and its open phase up to the last heartbeat, and the totals count it as killed."""
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a heartbeat with half a CPU second in it, however loaded the machine
            lines = read_ledger(tmp_path)
            if lines and lines[0]["cpu_s"] >= 0.5:
                break
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()
    (line,) = read_ledger(tmp_path)
    assert line["ended"] is None and not line["finished"] and line["pid"] == child.pid
    assert line["cpu_s"] >= 0.5 and line["wall_s"] >= 0.5 and line["phases_s"]["evaluation"] >= 0.5
    assert ledger_totals([line])["killed_invocations"] == 1


BUSY_CHILD = "import sys, time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\n" \
             "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)"


def test_the_cpu_time_of_live_workers_counts(tmp_path):
    """A worker pool is still running when the heartbeat reads the time: its CPU seconds count, which the operating
    system's account of finished children does not hold yet."""
    with Invocation(tmp_path, "pool") as invocation:
        child = subprocess.Popen([sys.executable, "-c", BUSY_CHILD], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            assert invocation.current(ended=None)["cpu_s"] >= 1.0
        finally:
            child.kill()
            child.wait()


TERMINATED = """
import os, signal, sys, time
from harness.cli import main as cli
from harness.costs import Invocation

def work(args):
    with Invocation(sys.argv[1], "terminated") as invocation, invocation.phase("evaluation"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

parser = cli.build_parser()
parser.set_defaults(func=work)
cli.build_parser = lambda: parser
code = cli.main([])
sys.exit(code if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 99)
"""


def test_sigterm_ends_a_bench_command_as_ctrl_c_does(tmp_path):
    """``kill PID`` on ``bench run``: the invocation writes its line as interrupted, bench says how to resume and
    exits with 143, and the default SIGTERM handler is back afterwards."""
    done = subprocess.run([sys.executable, "-c", TERMINATED, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 143, done.stderr
    assert "terminated; rerun the same command to resume" in done.stderr
    (line,) = read_ledger(tmp_path)
    assert line["ended"] == "interrupted" and "evaluation" in line["phases_s"]


HOLDING = """
import sys, time
from harness.costs import Invocation
with Invocation(sys.argv[1], "holding"):
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    time.sleep(60)
"""


def test_a_run_folder_another_live_process_works_on_is_refused(tmp_path):
    """A second `bench run` on a folder a background run is still working on would relax the same structures again
    (and two MP-20 evaluations at once have run out of memory here): it is refused, naming the pid; once that
    process is gone, its recent line no longer holds the folder."""
    import psutil

    from harness.runner import RunError, claim_run_dir

    params = {"plugin": "trainset", "dataset": "tiny", "n_samples": 4, "seed": 0}
    child = subprocess.Popen([sys.executable, "-c", HOLDING, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(RunError, match=rf"another bench process \(pid {child.pid},.*kill {child.pid}"):
            claim_run_dir(tmp_path, params)
        assert not (tmp_path / "run.json").exists()
        child.kill()  # killed and not yet reaped: a zombie, which is not at work
        deadline = time.monotonic() + 30
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        claim_run_dir(tmp_path, params)
    finally:
        child.kill()
        child.wait()
    assert (tmp_path / "run.json").exists()
    with Invocation(tmp_path, "this process"):  # its own line does not hold the folder against it
        claim_run_dir(tmp_path, params)
