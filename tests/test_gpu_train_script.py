"""benchmarks/gpu_train.py at toy size on the CPU: every job goes through ``bench train``, a failing job leaves the
others running, the summary says what each left (epochs, loss, checkpoint hash and size), the copied checkpoints
load through the generators and sample; an oversized preset is refused before training, a job past its slot is
killed, missing data is named, and the GPU wrapper stops where torch sees no CUDA device."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter

from harness.io import sha256_file
from harness.schemas import validate
from tests.conftest import toy_structures

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_train.py"
PLUGINS = ("symmbfn", "symmcd", "symat")
PRESETS = {"symmbfn": "tiny", "symmcd": "tiny", "symat": "cpu"}  # SyMat has no test preset; its cpu one is small
EPOCHS = 2

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_train  # noqa: E402


def write_toy_perov5(data: Path) -> None:
    """The dozen toy crystals as Perov-5's training split (a plain .csv, which is not checked against the card's hash)."""
    structures = toy_structures()
    folder = data / "perov5"
    folder.mkdir(parents=True)
    pd.DataFrame({"material_id": [f"toy-{i}" for i in range(len(structures))],
                  "cif": [str(CifWriter(s)) for s in structures]}).to_csv(folder / "train.csv")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_train")
    write_toy_perov5(root / "data")
    env = {**os.environ, "XTALBENCH_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--datasets", "perov5",
               "--plugins", "nosuchgen," + ",".join(PLUGINS), "--preset", "cpu", "--preset-for", "symmbfn=tiny",
               "--preset-for", "symmcd=tiny", "--epochs", str(EPOCHS), "--minutes", "3", "--threads", "1",
               "--workers", "2", "--data-dir", str(root / "data"), "--out", str(root / "out"),
               "--work-dir", str(root / "work")]
    started = time.monotonic()
    process = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    wall = time.monotonic() - started
    summary = json.loads((root / "out" / gpu_train.SUMMARY).read_text())
    return root, process, summary, wall


def test_every_job_ran_through_bench_train_and_one_failure_stopped_none(toy_run):
    root, process, summary, wall = toy_run
    assert process.returncode == 1, process.stderr[-2000:]  # nosuchgen failed, so not every job left a checkpoint
    validate(summary, "benchmark")
    assert summary["benchmark"] == "gpu_train" and summary["ok"] is False
    assert summary["device"] == "cpu" and summary["cuda_available"] is torch.cuda.is_available()
    assert summary["data_dir"] == str((root / "data").resolve())
    assert wall < 3 * 60 and summary["wall_seconds"] < 3 * 60  # inside the budget
    jobs = {job["plugin"]: job for job in summary["jobs"]}
    assert list(jobs) == ["nosuchgen", *PLUGINS]
    failed = jobs.pop("nosuchgen")
    assert failed["status"] == "failed" and "status 2" in failed["error"] and failed["checkpoint"] is None
    assert any("nosuchgen" in line for line in failed["log_tail"])  # bench's own error, kept for the reader
    for name, job in jobs.items():
        assert job["status"] == "ok" and job["error"] is None, job
        assert (job["dataset"], job["train_split"], job["preset"]) == ("perov5", "train", PRESETS[name])
        assert job["command"].startswith(f"bench train --plugin {name} --dataset perov5 --train-split train")
        assert f"--epochs {EPOCHS}" in job["command"] and "--device cpu" in job["command"]
        assert job["device_name"] == summary["device_name"] and job["device_name"]
        assert job["epochs"] == EPOCHS and job["exit_code"] == 0
        assert isinstance(job["final_loss"], float) and math.isfinite(job["final_loss"])
        assert job["final_losses"]["total"] == job["final_loss"]
        assert 0 < job["wall_seconds"] < 3 * 60 and 0 < job["max_minutes"] <= 3
        assert isinstance(job["git_commit"], str) and job["git_commit"]


def test_checkpoints_and_manifests_are_copied_hashed_and_within_the_cap(toy_run):
    root, _, summary, _ = toy_run
    out = root / "out"
    for job in summary["jobs"][1:]:
        name = job["plugin"]
        model, manifest_path = out / name / "perov5" / "model.pt", out / name / "perov5" / "manifest.json"
        assert job["checkpoint"]["path"] == f"{name}/perov5/model.pt" and job["manifest"] == f"{name}/perov5/manifest.json"
        assert job["checkpoint"]["sha256"] == sha256_file(model)
        assert job["checkpoint"]["bytes"] == model.stat().st_size <= summary["max_checkpoint_bytes"] == 16 * 2**20
        # the size preflight predicted the file to within the manifest's few kB
        assert abs(job["estimated_checkpoint_bytes"] - job["checkpoint"]["bytes"]) < 16_000
        manifest = json.loads(manifest_path.read_text())
        validate(manifest, "manifest", str(manifest_path))
        assert (manifest["generator"], manifest["dataset"], manifest["splits"]) == (name, "perov5", "train")
        assert manifest["epochs"] == EPOCHS and manifest["preset"] == PRESETS[name] and manifest["device"] == "cpu"
    assert sorted(p.name for p in out.iterdir()) == sorted([*PLUGINS, gpu_train.SUMMARY])  # nothing else comes back


@pytest.mark.parametrize("name", PLUGINS)
def test_copied_checkpoint_loads_through_the_generator_and_samples(toy_run, name):
    from harness.registry import get_registry

    root, _, _, _ = toy_run
    generator = get_registry().generator(name, "perov5")
    generator.progress = False
    generator.load(root / "out" / name / "perov5" / "model.pt", "cpu")
    assert generator.training_splits() == ["train"]
    samples = generator.sample(2, seed=0, batch_size=2)
    assert len(samples) == 2 and all(s is None or isinstance(s, Structure) for s in samples)
    assert any(isinstance(s, Structure) and len(s) > 0 for s in samples)
    assert [None if s is None else s.as_dict() for s in generator.sample(2, seed=0, batch_size=2)] == \
        [None if s is None else s.as_dict() for s in samples]


def test_parallel_encoding_cached_for_the_jobs_equals_the_serial_one(toy_run):
    from harness.datasets import Split
    from plugins._asymmetric import convert_split

    root, _, _, _ = toy_run
    (cached,) = (root / "cache" / "asymmetric").glob("*.pkl")  # written by the script's 2 processes, read by 2 jobs
    parallel = pickle.loads(cached.read_bytes())
    structures = toy_structures()
    serial = convert_split(Split("perov5", "train", structures, [], parallel.split_sha256), use_cache=False)
    assert len(parallel.crystals) == len(serial.crystals) == len(structures) and parallel.failures == serial.failures
    for a, b in zip(parallel.crystals, serial.crystals, strict=True):
        assert (a.space_group, len(a.representatives)) == (b.space_group, len(b.representatives))
        assert [r.atomic_number for r in a.representatives] == [r.atomic_number for r in b.representatives]


def test_a_preset_over_the_size_cap_is_refused_before_training(toy_run, tmp_path, monkeypatch, capsys):
    from harness.datasets import Split

    root, _, _, _ = toy_run
    monkeypatch.setenv("XTALBENCH_CACHE", str(root / "cache"))
    code = gpu_train.main(["--device", "cpu", "--datasets", "perov5", "--plugins", "symat", "--preset", "cpu",
                           "--max-checkpoint-mib", "0.5", "--data-dir", str(root / "data"), "--out", str(tmp_path / "out"),
                           "--work-dir", str(tmp_path / "work"), "--minutes", "1"])
    assert code == 1 and "FAILED: preset 'cpu' of symat" in capsys.readouterr().out
    (job,) = json.loads((tmp_path / "out" / gpu_train.SUMMARY).read_text())["jobs"]
    assert job["status"] == "refused" and "over the 0.5 MiB cap" in job["error"] and "--preset-for symat=" in job["error"]
    assert job["estimated_checkpoint_bytes"] > 0.5 * 2**20 and job["command"] is None
    assert not (tmp_path / "work").exists() and not (tmp_path / "out" / "symat").exists()
    split = Split("perov5", "train", toy_structures(), [], "7" * 64)
    assert 0.5 * 2**20 < gpu_train.estimate_checkpoint_bytes("symat", "paper", split) < 16 * 2**20  # the paper one fits


def test_a_job_past_its_slot_is_killed_and_recorded(tmp_path):
    job = {"plugin": "slow", "dataset": "toy", "run_dir": tmp_path / "slow"}
    process = gpu_train.start(job, [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(120)"])
    started = time.monotonic()
    gpu_train.finish(job, process, deadline=time.monotonic() + 2)
    assert time.monotonic() - started < 15 and process.poll() is not None
    gpu_train.collect(job, tmp_path / "out", max_bytes=2**20)
    assert gpu_train.job_status(job) == "killed" and job["exit_code"] is None and "killed" in job["error"]
    assert job["log_tail"] == ["working"] and not (tmp_path / "out").exists()


def test_missing_data_is_named(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        gpu_train.resolve_data_dir(tmp_path / "nowhere", {"mp20": ["val"]})
    monkeypatch.setenv("XTALBENCH_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        gpu_train.resolve_data_dir(None, {"mp20": ["val", "train_recovered"]})
    assert f"missing from {tmp_path}" in str(caught.value)
    assert "mp20:val (" in str(caught.value) and "train_recovered.csv.gz" in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_the_script_and_its_wrapper_say_so(tmp_path):
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        gpu_train.torch_device_name("cuda")
    wrapper = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_train.sh"), "--out", str(tmp_path)], cwd=REPO,
                             capture_output=True, text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert wrapper.returncode == 4 and "cuda available: False" in wrapper.stdout
    assert "torch sees no CUDA device" in wrapper.stderr and not any(tmp_path.iterdir())
