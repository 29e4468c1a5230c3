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
