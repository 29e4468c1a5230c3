"""The Dask executor gives the process pool's outcomes: order, error texts, timeouts, deaths, and whole records."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from harness.evaluate_file import evaluate_file
from harness.evaluation import EvaluationRequest
from harness.executors import default_executor
from harness.parallel import Executor, ProcessExecutor
from harness.parallel_dask import DaskExecutor  # imports dask only when an executor is made
from tests.conftest import TINY_CARD, perovskite, rocksalt, tiny_structures, write_cif_csv

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_pool():
    with DaskExecutor(2, progress=False) as executor:  # a LocalCluster of two single-threaded processes
        yield executor


@pytest.fixture(scope="module")
def process_pool():
    with ProcessExecutor(2, progress=False) as executor:
        yield executor


def test_values_come_back_in_order(dask_pool):
    assert isinstance(dask_pool, Executor) and dask_pool.workers == 2
    outcomes = dask_pool.map(math.factorial, list(range(12)), timeout_s=30)
    assert [o.value for o in outcomes] == [math.factorial(i) for i in range(12)]
    assert all(o.ok for o in outcomes) and dask_pool.map(abs, []) == []


def test_failures_read_as_the_process_pools(dask_pool, process_pool):
    cases = [(math.sqrt, [4.0, -1.0]), (os._exit, [3]), (math.factorial, [-1, 5])]
    for fn, items in cases:
        expected = process_pool.map(fn, items, timeout_s=30)
        got = dask_pool.map(fn, items, timeout_s=30)
        assert [(o.value, o.error) for o in got] == [(o.value, o.error) for o in expected]
    assert dask_pool.map(math.sqrt, [-1.0])[0].error == "ValueError: math domain error"
    assert dask_pool.map(os._exit, [3])[0].error == "worker died (exit code 3)"
    unpicklable = [[1, 2], lambda: None, "abc"]
    got = dask_pool.map(len, unpicklable, timeout_s=10)
    assert [o.value for o in got] == [2, None, 3] and got[1].error.startswith("cannot send to worker: ")
    assert got[1].error == process_pool.map(len, unpicklable, timeout_s=10)[1].error


def test_an_item_over_its_timeout_does_not_hold_up_the_rest(dask_pool):
    started = time.perf_counter()
    outcomes = dask_pool.map(time.sleep, [0.0, 30.0, 0.0, 0.0, 0.0], timeout_s=1.5)
    assert [o.error for o in outcomes] == [None, "timeout after 1.5 s", None, None, None]
    assert time.perf_counter() - started < 15
    assert dask_pool.map(math.sqrt, [9.0, 16.0], timeout_s=5)[1].value == 4.0  # the killed child was replaced


def test_joining_a_running_scheduler_leaves_it_running(dask_pool):
    with default_executor(progress=False, scheduler=dask_pool.scheduler_address) as joined:
        assert isinstance(joined, DaskExecutor) and joined.workers == 2
        assert [o.value for o in joined.map(abs, [-1, -2])] == [1, 2]
    assert dask_pool.map(abs, [-3])[0].value == 3
    assert EvaluationRequest(dataset="tiny", scheduler="tcp://x:1").executor == "dask"
    with pytest.raises(ValueError, match="unknown executor"):
        EvaluationRequest(dataset="tiny", executor="ray")


def test_dask_is_imported_only_when_asked_for():
    code = ("import sys, harness.evaluation, harness.cli.common, harness.parallel_dask; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def _evaluate(path, out, request, monkeypatch, cache):
    monkeypatch.setenv("XTALBENCH_CACHE", str(cache))  # each run computes the reference features itself
    record_path = evaluate_file(path, request, TINY_CARD, out=out)
    return json.loads(record_path.read_text()), pd.read_parquet(record_path.parent / "per_sample.parquet")


def test_an_evaluation_on_dask_matches_the_process_pools(tiny_dataset, dask_pool, tmp_path, monkeypatch):
    samples = tmp_path / "samples.csv.gz"
    distorted = rocksalt(4.9, "K", "Br")
    distorted.perturb(0.05, min_distance=0.05)
    write_cif_csv(samples, [*tiny_structures()[:5], distorted, perovskite(4.1, "Ca", "Zr")])
    common = dict(dataset="tiny", stability=False, workers=2, progress=False)
    pool, pool_table = _evaluate(samples, tmp_path / "pool", EvaluationRequest(**common), monkeypatch,
                                 tmp_path / "cache-pool")
    dask, dask_table = _evaluate(samples, tmp_path / "dask",
                                 EvaluationRequest(**common, scheduler=dask_pool.scheduler_address), monkeypatch,
                                 tmp_path / "cache-dask")
    assert dask["metrics"] == pool["metrics"] and dask["metrics"]["struct_valid"] == 1.0
    pd.testing.assert_frame_equal(dask_table, pool_table)
    assert pool["details"]["metrics"]["executor"]["type"] == "ProcessExecutor"
    assert dask["details"]["metrics"]["executor"]["type"] == "DaskExecutor"
    for key in ("coverage", "wdist", "symprec", "fingerprint_failures", "analysis_failures", "spglib_failures"):
        assert dask["details"]["metrics"][key] == pool["details"]["metrics"][key], key
