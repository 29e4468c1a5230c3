"""The runner: records that validate, determinism, resume after a kill, and generators that misbehave."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.evaluation import EvaluationRequest
from harness.generator import Generator, GeneratorSpec
from harness.hookspecs import hookimpl
from harness.records import RecordError, load_record, validate
from harness.registry import build_registry, set_registry
from harness.runner import RunRequest, generate, run
from plugins.baselines.trainset import TrainsetGenerator
from tests.conftest import TinyDatasetPlugin

N = 12


def quality(record) -> dict:
    """The metrics a seed fixes (timings are measured, so they differ between runs)."""
    return {k: v for k, v in record["metrics"].items() if not k.startswith("seconds_")}


def request(tmp_path, name, **kw) -> RunRequest:
    evaluation = EvaluationRequest(dataset="tiny", stability=False, workers=1, progress=False)
    return RunRequest(plugin=kw.pop("plugin", "trainset"), dataset="tiny", n_samples=N, batch_size=5,
                      out=tmp_path / name, evaluation=evaluation, **kw)


def test_trainset_run_writes_a_valid_record(tiny_dataset, tmp_path):
    path = run(request(tmp_path, "a"))
    record = load_record(path)
    assert record["tier"] == "custom" and record["n_samples"] == N
    assert record["splits"]["model_trained_on"] == "train" and record["splits"]["paper_training_split"]
    assert record["metrics"]["struct_valid"] == 1.0
    assert record["metrics"]["stable_rate"] is None  # not computed, so null, never made up
    table = pd.read_parquet(path.parent / "per_sample.parquet")
    assert len(table) == N


def test_same_seed_same_metrics_other_seed_other_samples(tiny_dataset, tmp_path):
    first = load_record(run(request(tmp_path, "a", seed=3)))
    second = load_record(run(request(tmp_path, "b", seed=3)))
    third = load_record(run(request(tmp_path, "c", seed=4)))
    assert quality(first) == quality(second)
    assert first["data"]["samples_sha256"] == second["data"]["samples_sha256"]
    assert first["data"]["samples_sha256"] != third["data"]["samples_sha256"]


def test_a_killed_run_resumes_to_the_same_record(tiny_dataset, tmp_path):
    whole = load_record(run(request(tmp_path, "whole", seed=7)))
    # Simulate a kill after the first batch: only batch 0 was written, no record.
    generator = TrainsetGenerator("tiny")
    generator.load(None, "cpu")
    partial = tmp_path / "resumed"
    generate(generator, 5, 7, 5, partial, progress=False)
    (partial / "run.json").write_text(json.dumps({"plugin": "trainset", "dataset": "tiny", "n_samples": N, "seed": 7,
                                                  "batch_size": 5, "checkpoint_sha256": None, "tier": "custom"}))
    resumed = load_record(run(request(tmp_path, "resumed", seed=7)))
    assert quality(resumed) == quality(whole)
    assert resumed["data"]["samples_sha256"] == whole["data"]["samples_sha256"]


def test_a_packed_generation_resumes_in_a_fresh_clone_sampling_only_the_unfinished_batch(tiny_dataset, tmp_path,
                                                                                         monkeypatch):
    import shutil

    from harness.stability.carry import pack_batches

    whole = load_record(run(request(tmp_path, "whole", seed=7)))
    generator = TrainsetGenerator("tiny")
    generator.load(None, "cpu")
    carried = tmp_path / "carried"
    generate(generator, 10, 7, 5, carried, progress=False)  # a session ended after two of the three batches
    (carried / "run.json").write_text(json.dumps({"plugin": "trainset", "dataset": "tiny", "n_samples": N, "seed": 7,
                                                  "batch_size": 5, "checkpoint_sha256": None, "tier": "custom"}))
    assert pack_batches(carried) == (2, 2) and pack_batches(carried) == (2, 0)
    shutil.rmtree(carried / "batches")  # a fresh clone holds the archive alone
    seeds = []
    real = TrainsetGenerator.sample
    monkeypatch.setattr(TrainsetGenerator, "sample",
                        lambda self, n, seed, batch_size: seeds.append(seed) or real(self, n, seed, batch_size))
    resumed = load_record(run(request(tmp_path, "carried", seed=7)))
    assert len(seeds) == 1  # the batch that never finished, and only it
    assert resumed["data"]["samples_sha256"] == whole["data"]["samples_sha256"]
    assert quality(resumed) == quality(whole)


def test_a_lean_packed_structure_reads_back_bit_for_bit():
    import numpy as np
    from pymatgen.core import Lattice, Structure

    from harness.stability.carry import _lean_structure

    rng = np.random.default_rng(0)
    structure = Structure(Lattice(rng.normal(size=(3, 3)) + 5 * np.eye(3)), ["Li", "O", "Fe"], rng.random((3, 3)),
                          site_properties={"magmom": [0.1, -0.2, 0.3]})
    structure.add_oxidation_state_by_element({"Li": 1, "O": -2, "Fe": 1})
    structure[0].label = "Li_a"
    stored = json.loads(json.dumps(structure.as_dict()))  # what a batch file holds
    back = Structure.from_dict(json.loads(json.dumps(_lean_structure(stored))))
    plain = Structure.from_dict(stored)
    assert len(json.dumps(_lean_structure(stored))) < len(json.dumps(stored))
    assert np.array_equal(back.lattice.matrix, plain.lattice.matrix)
    assert np.array_equal(back.frac_coords, plain.frac_coords) and np.array_equal(back.cart_coords, plain.cart_coords)
    assert [s.species for s in back] == [s.species for s in plain] and back.labels == plain.labels
    assert back.site_properties == plain.site_properties


def test_a_packed_batch_outside_a_batches_folder_is_refused(tmp_path):
    import gzip

    from harness.stability.carry import BATCHES_NAME, restore

    (tmp_path / BATCHES_NAME).write_bytes(gzip.compress(b'{"path": "../batches/00000.json.gz", "payload": {}}\n'))
    with pytest.raises(ValueError, match="not a generation batch"):
        restore(tmp_path)


def test_resuming_with_other_settings_is_refused(tiny_dataset, tmp_path):
    from harness.runner import RunError

    target = tmp_path / "x"
    target.mkdir()
    (target / "run.json").write_text(json.dumps({"seed": 99}))
    with pytest.raises(RunError, match="other settings"):
        run(request(tmp_path, "x"))


class Flaky(Generator):
    name = "flaky"
    version = "1"

    def train(self, dataset, config, out_dir, seed):
        raise NotImplementedError

    def load(self, checkpoint, device):
        pass

    def sample(self, n, seed, batch_size):
        if seed % 2:
            raise RuntimeError("model exploded")
        from tests.conftest import rocksalt

        return [rocksalt(), None, "junk"][: n] + [rocksalt()] * max(0, n - 3)


class FlakyPlugin:
    @hookimpl
    def xtalbench_register_generators(self, register):
        register(GeneratorSpec(name="flaky", version="1", target="tests.test_runner:Flaky"))


def test_a_generator_that_raises_or_returns_junk_gives_invalid_samples(tiny_dataset, tmp_path):
    set_registry(build_registry(extra_plugins=[TinyDatasetPlugin(), FlakyPlugin()]))
    path = run(request(tmp_path, "flaky", plugin="flaky", seed=1))
    record = load_record(path)
    table = pd.read_parquet(path.parent / "per_sample.parquet")
    reasons = table["invalid_reason"].dropna().tolist()
    assert any("model exploded" in r for r in reasons) or any("no structure" in r for r in reasons)
    assert 0 <= record["metrics"]["valid"] < 1


def test_records_with_unknown_schema_or_extra_metrics_are_refused(tiny_dataset, tmp_path):
    path = run(request(tmp_path, "a"))
    record = json.loads(path.read_text())
    record["schema_version"] = 99
    path.write_text(json.dumps(record))
    with pytest.raises(RecordError, match="schema_version 99"):
        load_record(path)
    record["schema_version"] = 1
    record["metrics"]["made_up"] = 1.0
    with pytest.raises(RecordError, match="made_up"):
        validate(record)


class Chatty(Flaky):
    """Samples and remembers whether its own progress bars were allowed to show."""

    def __init__(self, dataset):
        super().__init__(dataset)
        self.seen_progress = []

    def sample(self, n, seed, batch_size):
        self.seen_progress.append(self.progress)
        from tests.conftest import rocksalt

        return [rocksalt()] * n


def test_no_progress_reaches_the_generators_own_bars(tiny_dataset, tmp_path):
    generator = Chatty("tiny")
    generate(generator, 3, 0, 3, tmp_path / "quiet", progress=False)
    generate(generator, 3, 0, 3, tmp_path / "loud", progress=True)
    assert generator.seen_progress == [False, True]


def test_a_resumed_run_records_the_summed_cost_of_all_its_invocations(tiny_dataset, tmp_path, monkeypatch):
    import time

    from harness import recording
    from harness.costs import read_ledger

    real_evaluate = recording.evaluate

    def interrupted(*args, **kwargs):
        time.sleep(0.3)  # evaluation work that the kill throws away
        raise KeyboardInterrupt

    monkeypatch.setattr(recording, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(request(tmp_path, "r", seed=5))
    first = read_ledger(tmp_path / "r")
    assert len(first) == 1 and not first[0]["finished"] and first[0]["phases_s"]["evaluation"] >= 0.3
    monkeypatch.setattr(recording, "evaluate", real_evaluate)
    record = load_record(run(request(tmp_path, "r", seed=5)))
    timings = record["timings"]
    ledger = read_ledger(tmp_path / "r")
    assert timings["invocations"] == 2 == len(ledger) and ledger[1]["finished"]
    rounding = 2e-3  # the summed figures are rounded to milliseconds, the final invocation's are not
    assert timings["wall_s"] >= first[0]["wall_s"] + timings["evaluation_s_final_invocation"] - rounding
    # The interrupted evaluation's time counts: the record's evaluation is more than its last invocation's.
    assert timings["evaluation_s"] >= timings["evaluation_s_final_invocation"] + 0.3 - rounding
    assert timings["cpu_s"] > 0 and timings["max_rss_gb"] > 0.05
    assert "fingerprints" in timings["stages_final_invocation_s"]


def test_the_relaxed_subset_size_comes_from_the_tier(tiny_dataset, tmp_path, monkeypatch):
    from harness import runner
    from harness.protocol import custom_tier

    seen = []
    monkeypatch.setattr(runner, "record_run", lambda samples, run_dir, request, card, origin, invocation:
                        seen.append((request, origin)))
    run(request(tmp_path, "default"))  # 12 samples: a tenth, at least one
    run(request(tmp_path, "asked", n_relax=5))
    assert [r.n_relax for r, _ in seen] == [custom_tier(N).n_relax, 5] == [1, 5]
    assert {origin.tier for _, origin in seen} == {"custom"}
