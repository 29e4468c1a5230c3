"""The composer: every key filled, every requested sample in the denominators, the reference cache reused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from metrics_fixtures import permuted, perovskite, rocksalt, rotated

from harness.datasets import Split
from harness.evaluation_types import Sample
from harness.metrics import METRICS, TABLE_COLUMNS, evaluate
from harness.parallel import SerialExecutor
from harness.protocol import COV_CUTOFFS

PEROV5_CUTOFFS = COV_CUTOFFS["perov5"]


def _reference() -> Split:
    structures = [perovskite(), rocksalt(), perovskite(4.0, ("Ba", "Ti", "O"))]
    return Split("perov5", "test", structures, ["a", "b", "c"], sha256="hand-built-reference-v1")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path))
    return tmp_path


def test_reference_scored_against_itself(cache):
    reference = _reference()
    samples = [
        Sample(10, rotated(reference.structures[0], 1)),
        Sample(11, permuted(reference.structures[1], 2)),
        Sample(12, reference.structures[2]),
        Sample(13, None, "lattice length <= 0"),
    ]
    result = evaluate(samples, reference, cov_cutoffs=PEROV5_CUTOFFS, seed=0, executor=SerialExecutor(progress=False))
    m = result.metrics
    assert set(m) == set(METRICS)
    assert m["struct_valid"] == m["comp_valid"] == m["valid"] == 0.75  # the unbuilt sample counts
    assert m["cov_recall"] == 1.0
    assert m["cov_precision"] == 0.75  # pre-filter denominator: 3 covered / 4 requested
    assert m["wdist_density"] == pytest.approx(0.0, abs=1e-9) and m["wdist_num_elems"] == 0.0
    assert m["sg_jsd"] == pytest.approx(0.0, abs=1e-9) and m["sg_jsd_symmcd"] == pytest.approx(0.0, abs=1e-9)

    table = result.table
    assert list(table.columns) == list(TABLE_COLUMNS) and list(table.index) == [10, 11, 12, 13]
    assert table.loc[13, "validity_reason"] == "not constructed: lattice length <= 0"
    assert table.loc[10, "spacegroup"] == 221 and table.loc[11, "spacegroup"] == 225
    assert table.loc[12, "formula"] == "BaTiO3" and bool(table.loc[12, "valid"])

    info = result.info
    assert (
        info["wdist"]["seed"] == 0
        and info["wdist"]["subset_size"] == 3
        and "only 3 valid" in info["wdist"]["note"]
    )
    assert info["coverage"]["struct_cutoff"] == 0.2 and info["coverage"]["denominator_precision"] == 4
    assert info["reference_cache"]["cache"] == "miss"
    assert list((cache / "metrics").glob("perov5-test-*.npz"))
    again = evaluate(samples, reference, cov_cutoffs=PEROV5_CUTOFFS, seed=0, executor=SerialExecutor(progress=False))
    assert again.info["reference_cache"]["cache"] == "hit"
    assert again.metrics == m


def test_invalid_samples_and_undefined_metrics(cache):
    reference = _reference()
    close = perovskite()
    close.append("O", [0.5, 0.5, 0.52])  # 0.08 Å from Ti... and unbalanced
    nao2 = rocksalt()
    nao2.replace_species({"Cl": "O"})
    nao2.append("O", [0.25, 0.25, 0.25])
    samples = [Sample(0, close), Sample(1, None, "no atoms")]
    result = evaluate(samples, reference, cov_cutoffs=PEROV5_CUTOFFS, seed=3, executor=SerialExecutor(progress=False))
    m = result.metrics
    assert m["struct_valid"] == 0.0 and m["valid"] == 0.0
    assert m["wdist_density"] is None and m["sg_jsd"] is None and m["sg_jsd_symmcd"] is None
    assert m["cov_precision"] is not None and m["cov_recall"] is not None
    assert "apart" in result.table.loc[0, "validity_reason"]
    assert result.info["wdist"]["note"] == "no valid samples"


def test_changed_reference_is_not_served_from_cache(cache):
    reference = _reference()
    samples = [Sample(0, perovskite())]
    evaluate(samples, reference, cov_cutoffs=PEROV5_CUTOFFS, seed=0, executor=SerialExecutor(progress=False))
    changed = Split("perov5", "test", reference.structures[:2], ["a", "b"], sha256="hand-built-reference-v2")
    result = evaluate(samples, changed, cov_cutoffs=PEROV5_CUTOFFS, seed=0, executor=SerialExecutor(progress=False))
    assert result.info["reference_cache"]["cache"] == "miss"
    assert result.info["coverage"]["n_reference"] == 2


def _perov5_test_head(n: int) -> Split | None:
    from harness.datasets import DatasetError, load_split

    if not os.environ.get("XTALBENCH_DATA") and not Path("/work/shared/datasets").exists():
        return None
    try:
        split = load_split(
            "perov5",
            "test",
            data_dir=os.environ.get("XTALBENCH_DATA") or "/work/shared/datasets",
            download=False,
        )
    except DatasetError:
        return None
    return Split(
        "perov5", "test", split.structures[:n], split.material_ids[:n], sha256=f"{split.sha256}-head{n}"
    )


@pytest.mark.slow
def test_perov5_test_head_scored_as_samples(tmp_path, monkeypatch):
    head = _perov5_test_head(16)  # loaded before the cache moves: the parsed split stays cached
    if head is None:
        pytest.skip("Perov-5 test split not available")
    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path))
    samples = [Sample(i, s) for i, s in enumerate(head.structures)]
    result = evaluate(samples, head, cov_cutoffs=PEROV5_CUTOFFS, seed=1, executor=SerialExecutor(progress=False))
    m = result.metrics
    assert m["struct_valid"] == 1.0 and m["cov_recall"] == 1.0 and m["cov_precision"] == 1.0
    assert 0.9 <= m["comp_valid"] <= 1.0 and m["valid"] == m["comp_valid"]
    assert np.isfinite(m["wdist_density"]) and np.isfinite(m["sg_jsd"]) and np.isfinite(m["sg_jsd_symmcd"])


def test_shipped_reference_features_spare_a_fresh_cache_and_a_damaged_one_is_ignored(cache, tmp_path, monkeypatch):
    from harness.metrics import reference as ref

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(ref, "SHIPPED_DIR", shipped)
    split = _reference()
    ref.reference_features(split, executor=SerialExecutor(progress=False))
    target = ref.export_features(split)
    assert target.parent == shipped and target.name in ref._shipped_index()
    for cached in (cache / "metrics").glob("*.npz"):
        cached.unlink()  # a fresh machine: nothing cached
    features, info = ref.reference_features(split, executor=SerialExecutor(progress=False))
    assert info["cache"] == "hit" and len(features) == 3
    for cached in (cache / "metrics").glob("*.npz"):
        cached.unlink()
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")  # damaged: its sha256 is not the pinned one
    _, info = ref.reference_features(split, executor=SerialExecutor(progress=False))
    assert info["cache"] == "miss"
