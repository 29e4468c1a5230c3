"""benchmarks/coverage_cutoffs.py: coverage at other cutoffs is the protocol's computation with those cutoffs."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage_cutoffs  # noqa: E402


def test_coverage_grows_with_the_cutoffs_and_counts_every_requested_sample():
    rng = np.random.default_rng(0)
    gen_s, gen_c = rng.normal(size=(60, 4)), rng.normal(size=(60, 5))
    ref_s, ref_c = rng.normal(size=(40, 4)), rng.normal(size=(40, 5))
    fp_ok = np.ones(60, bool)
    fp_ok[:6] = False  # samples without a fingerprint are never precise but stay in the denominator
    rows = coverage_cutoffs.coverage_table(gen_s, gen_c, fp_ok, ref_s, ref_c, np.ones(40, bool),
                                           [(1.0, 1.5), (2.0, 2.6), (100.0, 100.0)])
    recalls = [r["cov_recall"] for r in rows]
    precisions = [r["cov_precision"] for r in rows]
    assert recalls == sorted(recalls) and precisions == sorted(precisions) and recalls[0] < recalls[1]
    assert rows[2]["cov_recall"] == 1.0 and rows[2]["cov_precision"] == pytest.approx(54 / 60)
    # brute force at the middle cutoffs
    ds = np.linalg.norm(gen_s[fp_ok][:, None] - ref_s[None], axis=2)
    dc = np.linalg.norm(gen_c[fp_ok][:, None] - ref_c[None], axis=2)
    recall = np.mean((ds.min(axis=0) <= 2.0) & (dc.min(axis=0) <= 2.6))
    precision = np.sum((ds.min(axis=1) <= 2.0) & (dc.min(axis=1) <= 2.6)) / 60
    assert rows[1]["cov_recall"] == pytest.approx(recall) and rows[1]["cov_precision"] == pytest.approx(precision)


@pytest.mark.parametrize("text", ["0.8", "a,b", "0.8,-1"])
def test_cutoff_pairs_are_checked(text):
    with pytest.raises(argparse.ArgumentTypeError):
        coverage_cutoffs.cutoff_pair(text)
