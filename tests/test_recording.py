"""Recording: one module assembles the record of a generator's samples and of a sample file alike."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.cards import Split
from harness.evaluation import Evaluation, EvaluationRequest
from harness.evaluation_types import Sample
from harness.protocol import METRIC_KEYS
from harness.recording import Origin, build_record, reason_counts, relaxer_flag, relaxer_suffix
from harness.records import validate
from tests.conftest import rocksalt

PLUGIN = {"name": "m", "version": "1", "distribution": None, "distribution_version": None}


def _evaluation(novelty: bool) -> Evaluation:
    metrics = {key: None for key in METRIC_KEYS} | {"valid": 0.5, "stable_rate": 0.25 if novelty else None}
    reference = Split("tiny", "test", [], [], "a" * 64)
    train = Split("tiny", "train", [], [], "b" * 64) if novelty else None
    details = {"metrics": {"wall_seconds": {"fingerprints": 1.234}}}
    return Evaluation(metrics, pd.DataFrame(), details, reference, train, seconds=2.0)


SAMPLES = [Sample(0, rocksalt()), Sample(1, None, "s.csv row 3: does not parse"),
           Sample(2, None, "s.csv row 9: does not parse")]


@pytest.mark.parametrize("origin", [
    Origin(PLUGIN, "custom", sample_seed=3, generation_s=4.0, device="cpu", model_trained_on="val"),
    Origin(PLUGIN, "custom", external={"model": "X", "source": "a paper", "status": "raw"}, samples_sha256="c" * 64, run_id="r"),
])
def test_a_record_of_either_origin_validates_and_tells_where_its_samples_came_from(origin):
    request = EvaluationRequest(dataset="tiny", stability=origin.external is None)
    record = build_record(SAMPLES, request, _evaluation(request.stability), origin, run_id="r",
                          samples_sha256="c" * 64)
    validate(record)
    assert record["kind"] == ("external" if origin.external else "generated") == origin.kind
    assert record["n_samples"] == 3 and record["details"]["n_constructed"] == 1
    assert record["details"]["construction_failures"] == {"does not parse": 2}
    assert record["seeds"] == {"sample": origin.sample_seed, "wdist_subset": 0,
                               "relax_subset": 0 if request.stability else None}
    assert record["splits"]["paper_training_split"] == (origin.model_trained_on is None)
    assert record["splits"]["novelty"] == ("train" if request.stability else None)
    assert record["timings"]["stages_final_invocation_s"] == {"fingerprints": 1.23}
    cost = record["metrics"]["seconds_per_sample"]
    assert cost == (pytest.approx(4.0 / 3) if origin.generation_s else None)
    assert record["metrics"]["seconds_per_stable"] == (pytest.approx(4.0 / 3 / 0.25) if origin.generation_s else None)


def test_reasons_are_counted_without_their_position_and_relaxers_named_apart():
    assert reason_counts(SAMPLES) == {"does not parse": 2}
    assert (relaxer_suffix("chgnet"), relaxer_flag("chgnet")) == ("", "")
    assert (relaxer_suffix("sevennet"), relaxer_flag("sevennet")) == ("-sevennet", " --relaxer sevennet")


def test_bench_evaluate_records_without_the_runner():
    code = "import sys, harness.evaluate_file; print('harness.runner' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"


def test_an_external_sets_record_names_its_posted_file_instead_of_a_copy(tmp_path, monkeypatch):
    """bench evaluate of a posted file (matched to a package manifest by sha256) keeps no samples copy; any other
    file's samples are written beside the record."""
    from harness import recording
    from harness.external import get_manifest

    manifest = get_manifest("diffcsp")
    monkeypatch.setattr(recording, "evaluate", lambda samples, request, card, work_dir: _evaluation(False))
    request = EvaluationRequest(dataset="tiny", stability=False)
    for sha256, posted in ((manifest.sha256, True), ("c" * 64, False)):
        external = {**manifest.record_fields(), "manifest": manifest.name}
        origin = Origin(PLUGIN, "custom", external=external, samples_sha256=sha256, run_id="r")
        run_dir = tmp_path / sha256[:4]
        record = json.loads(recording.record_run(SAMPLES, run_dir, request, None, origin).read_text())
        assert (run_dir / "samples.extxyz.gz").exists() != posted
        assert record["files"]["samples"] == (None if posted else "samples.extxyz.gz")
        assert record["files"].get("posted_samples") == (manifest.posted_samples() if posted else None)
        assert record["data"]["samples_sha256"] == sha256
