"""Protocol 1.3's validity re-score (bench rescore --validity): a re-scored record is what a fresh evaluation of its
samples gives, an unchanged one keeps its metrics byte for byte, and the two re-scores each apply only their change."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import types
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure

from harness.evaluate_file import evaluate_file
from harness.evaluation import EvaluationRequest
from harness.metrics import compose
from harness.metrics.validity import comp_validity
from harness.protocol import PROTOCOL_VERSION, needs_rescore, version_after_rescore
from harness.rescore_validity import RESCORED_KEYS, rescore_validity
from harness.stability.rescore import RescoreError
from tests.conftest import TINY_CARD, tiny_structures, write_cif_csv

REPO = Path(__file__).resolve().parents[1]
REQUEST = EvaluationRequest(dataset="tiny", stability=False, workers=1, progress=False)
DISTRIBUTION = ("struct_valid", *RESCORED_KEYS, "cov_recall", "cov_precision")


def _nao2() -> Structure:
    """Na:O = 1:2, which no oxidation states balance: compositionally invalid under the protocol."""
    return Structure(Lattice.cubic(4.0), ["Na", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.3], [0.5, 0.5, 0.7]])


def _stand_in_old_rule(obj) -> bool:
    """A rule that differs from the protocol's on two compositions: NaO2 passes, MgO fails."""
    formula = obj if isinstance(obj, str) else obj.composition.reduced_formula
    flip = Composition(formula).reduced_formula in ("NaO2", "MgO")
    return comp_validity(obj) != flip


def _evaluate(tmp_path: Path, name: str, monkeypatch, rule=None) -> Path:
    """A record of the tiny structures and NaO2 against the tiny dataset, scored under ``rule`` (default: the
    protocol's), with the metrics' per-sample work in this process."""
    samples = tmp_path / "samples.csv.gz"
    if not samples.exists():
        write_cif_csv(samples, [*tiny_structures(), _nao2()])
    with monkeypatch.context() as patch:
        if rule is not None:
            patch.setattr(compose, "comp_validity", rule)
        return evaluate_file(samples, REQUEST, TINY_CARD, out=tmp_path / name).parent


def _table(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "per_sample.parquet")


def test_a_record_whose_valid_set_changes_is_rescored_to_a_fresh_evaluation(tiny_dataset, tmp_path, monkeypatch,
                                                                           capsys):
    from harness.cli.main import main

    old = _evaluate(tmp_path, "old", monkeypatch, rule=_stand_in_old_rule)
    before = json.loads((old / "record.json").read_text())
    before["protocol_version"] = "1.2"  # scored under the rule before 1.3
    (old / "record.json").write_text(json.dumps(before))
    assert _table(old).set_index("formula").loc[["NaO2", "MgO"], "valid"].tolist() == [True, False]

    assert main(["rescore", "--validity", str(old / "record.json")]) == 0
    record = json.loads((old / "record.json").read_text())
    assert f"protocol 1.2 -> {PROTOCOL_VERSION}; wdist_density" in capsys.readouterr().out
    fresh = json.loads((_evaluate(tmp_path, "fresh", monkeypatch) / "record.json").read_text())
    assert {k: record["metrics"][k] for k in DISTRIBUTION} == {k: fresh["metrics"][k] for k in DISTRIBUTION}
    assert record["metrics"]["sg_jsd"] != before["metrics"]["sg_jsd"]
    for key in ("n_valid", "wdist", "symprec"):
        assert record["details"]["metrics"][key] == fresh["details"]["metrics"][key], key
    columns = ["formula", "struct_valid", "comp_valid", "valid", "validity_reason"]
    pd.testing.assert_frame_equal(_table(old)[columns], _table(tmp_path / "fresh")[columns])

    entry = record["details"]["metrics"]["rescored"][-1]
    assert record["protocol_version"] == entry["to_protocol"] == PROTOCOL_VERSION
    assert entry["rescore"] == "validity" and entry["from_protocol"] == before["protocol_version"]
    nao2, mgo = (int(i) for i in _table(old).reset_index().set_index("formula").loc[["NaO2", "MgO"], "index"])
    assert sorted(entry["samples_changed"]["comp_valid"]) == sorted([nao2, mgo])
    assert entry["previous_metrics"] == {k: before["metrics"][k] for k in RESCORED_KEYS}
    assert "valid" not in entry["changed"]  # one sample in, one out: the fraction stays
    assert {"sg_jsd", "wdist_density"} <= set(entry["changed"])


def test_the_rule_a_record_was_scored_under_gives_its_metrics_back(tiny_dataset, tmp_path, monkeypatch):
    old = _evaluate(tmp_path, "old", monkeypatch, rule=_stand_in_old_rule)
    before = json.loads((old / "record.json").read_text())
    again = rescore_validity(old, rule=_stand_in_old_rule, force=True, write=False)
    assert again["metrics"] == before["metrics"]
    assert again["details"]["metrics"]["rescored"][-1]["samples_changed"] == {"comp_valid": [], "valid": []}


def test_an_unchanged_record_keeps_its_metrics_byte_for_byte_and_reads_no_reference(tiny_dataset, tmp_path,
                                                                                   monkeypatch):
    run = _evaluate(tmp_path, "run", monkeypatch)
    record_path = run / "record.json"
    before = json.loads(record_path.read_text())
    table_bytes = (run / "per_sample.parquet").read_bytes()
    monkeypatch.setattr("harness.rescore_validity._reference_features",
                        lambda *a, **k: pytest.fail("the test split was read for an unchanged valid set"))
    before["protocol_version"] = "1.2"  # as a record scored before 1.3
    record_path.write_text(json.dumps(before))
    record = rescore_validity(run)
    assert json.dumps(record["metrics"]) == json.dumps(before["metrics"])
    assert (run / "per_sample.parquet").read_bytes() == table_bytes
    assert record["protocol_version"] == PROTOCOL_VERSION
    entry = record["details"]["metrics"]["rescored"][-1]
    assert entry["from_protocol"] == "1.2" and entry["changed"] == [] and entry["recomputed"] == []
    assert entry["result"].startswith("no sample's compositional validity changed")
    for key in ("n_valid", "wdist", "symprec"):
        assert record["details"]["metrics"][key] == before["details"]["metrics"][key]


def test_each_rescore_applies_only_its_own_protocol_change():
    # 1.3 changed validity only: a 1.2 record with stability needs the validity re-score, never the stability one.
    assert needs_rescore("1.2", "validity", has_stability=True)
    assert not needs_rescore("1.2", "stability", has_stability=True)
    assert version_after_rescore("1.2", "stability", has_stability=True) == "1.2"
    assert version_after_rescore("1.2", "validity", has_stability=True) == "1.3"
    # 1.1 -> 1.2 changed stability: a 1.1 record with stability takes that first, and validity after it.
    assert needs_rescore("1.1", "stability", has_stability=True)
    assert version_after_rescore("1.1", "stability", has_stability=True) == "1.2"
    with pytest.raises(ValueError, match="re-score stability first"):
        version_after_rescore("1.1", "validity", has_stability=True)
    # Without stability results the stability changes do not apply: a 1.1 record goes straight to 1.3.
    assert needs_rescore("1.1", "validity", has_stability=False)
    assert version_after_rescore("1.1", "validity", has_stability=False) == "1.3"
    assert not needs_rescore("1.3", "validity", has_stability=True)


def test_bench_rescore_all_selects_by_the_change_each_applies(tmp_path):
    from harness.cli.rescore import _targets

    def record(name: str, version: str, n_relaxed) -> Path:
        path = tmp_path / name / "record.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"protocol_version": version, "metrics": {"n_relaxed": n_relaxed}}))
        return path.parent

    stable_12, plain_11, stable_11, current = (record("a", "1.2", 100), record("b", "1.1", None),
                                               record("c", "1.1", 100), record("d", PROTOCOL_VERSION, 100))
    selected = {kind: _targets(argparse.Namespace(records=[], results_dir=tmp_path, rescore=kind))
                for kind in ("stability", "validity")}
    assert selected["stability"] == [stable_11]
    assert selected["validity"] == [stable_12, plain_11]
    assert current not in selected["validity"]


def test_a_record_that_needs_the_stability_rescore_first_is_refused(tiny_dataset, tmp_path, monkeypatch):
    run = _evaluate(tmp_path, "run", monkeypatch)
    record = json.loads((run / "record.json").read_text())
    record["protocol_version"] = "1.1"
    record["metrics"]["n_relaxed"] = 1
    (run / "record.json").write_text(json.dumps(record))
    with pytest.raises(RescoreError, match="re-score stability first"):
        rescore_validity(run, write=False)


@pytest.mark.slow
def test_the_old_rule_gives_a_committed_records_1_2_metrics_back(tmp_path, monkeypatch):
    """xtalbench's rule before 223a052 (from git), re-scoring the committed MP-20 random quick record from its
    table, gives the metrics it held under 1.2 (its own, or those its validity re-score kept)."""
    run = REPO / "results" / "mp20" / "random" / "quick-seed0-6cb2b3efdd"
    try:
        source = subprocess.run(["git", "show", "223a052^:harness/metrics/validity.py"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history")
    smact = pytest.importorskip("smact")
    if not hasattr(smact.Element("Fe"), "oxidation_states_smact14"):
        pytest.skip("the installed SMACT has no oxidation_states_smact14")
    from harness.datasets import DatasetError, load_split

    try:
        load_split("mp20", "test", download=False)
    except DatasetError:
        pytest.skip("MP-20 test split not available")
    old = types.ModuleType("validity_pre_223a052")
    exec(compile(source, "validity_pre_223a052", "exec"), old.__dict__)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    committed = json.loads((copy / "record.json").read_text())
    rescored = (committed["details"]["metrics"].get("rescored") or [None])[-1]
    expected = rescored["previous_metrics"] if rescored else {k: committed["metrics"][k] for k in RESCORED_KEYS}
    again = rescore_validity(copy, rule=old.comp_validity, force=True, write=False)
    # equal to the last bit only on the same kind of CPU (OpenBLAS picks its kernels by CPU): recomputed on an Intel
    # Xeon, the AMD EPYC record's wdist_density 1.001557644851856 came back as 1.0015576448518557
    assert {k: again["metrics"][k] for k in RESCORED_KEYS} == pytest.approx(expected, rel=1e-12, abs=1e-15)
