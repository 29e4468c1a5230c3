"""A third-party package, installed for real, shows up in `bench plugins` and runs through `bench run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import rocksalt, write_cif_csv

PACKAGE = Path(__file__).parent / "thirdparty_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(PACKAGE)],
        check=True, capture_output=True, timeout=300,
    )
    return target


def bench(args, site, env_extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **env_extra}
    return subprocess.run([sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_thirdparty_plugin_is_listed_with_its_distribution(installed, tmp_path):
    result = bench(["plugins"], installed, {"XTALBENCH_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("rocksalt-demo"))
    assert "xtalbench-demo-plugin 0.0.1" in line


def test_thirdparty_plugin_runs_through_bench_run(installed, tmp_path):
    data = tmp_path / "data" / "demo"
    structures = [rocksalt(a, c, x) for a, c, x in [(4.0, "Li", "F"), (5.64, "Na", "Cl"), (6.6, "K", "Br")]]
    for split in ("train", "val", "test"):
        write_cif_csv(data / f"{split}.csv.gz", structures)
    env = {"XTALBENCH_DATA": str(tmp_path / "data"), "XTALBENCH_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    result = bench(["run", "--plugin", "rocksalt-demo", "--dataset", "demo", "--n-samples", "6", "--batch-size", "3",
                    "--no-stability", "--workers", "1", "--no-progress", "--out", str(out)], installed, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out / "record.json")
    assert (out / "samples.extxyz.gz").exists()
