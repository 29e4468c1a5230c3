"""The Materials Project formation-energy hull (protocol 1.2) and re-scoring records from stored energies."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure

from harness import stability
from harness.evaluation_types import Sample
from harness.protocol import novelty_split_name
from harness.stability.hull import HullError
from harness.stability.mp_reference import (
    MP_HULL_SHA256,
    FormationEnergyHull,
    hull_from_json,
    load_shipped_mp_hull,
    lowest_per_formula,
    read_elemental_references,
    shipped_mp_hull_path,
)
from harness.stability.relax import RelaxResult
from harness.stability.rescore import RescoreError, rescore_run

REPO = Path(__file__).resolve().parents[1]
MU = {"Li": -1.9, "O": -4.9}  # eV/atom, made-up elemental references


def tiny_hull() -> FormationEnergyHull:
    """Li-O in formation-energy space: Li2O at -2.0 and Li2O2 at -1.6 eV/atom, elements at 0."""
    entries = [("a", "Li2O", -2.0), ("b", "Li2O2", -1.6), ("c", "LiO3", -0.5),
               ("element:Li", "Li", 0.0), ("element:O", "O", 0.0)]
    elements = {el: {"energy_per_atom": mu} for el, mu in MU.items()}
    return FormationEnergyHull("tiny", "test", entries, elements)


def test_tiny_hull_energies_by_hand():
    hull = tiny_hull()
    # LiO (Li2O2) lies below the Li2O-O tie line (-1.5 at x_O = 1/2): on the hull.
    assert hull.hull_energy_per_atom(Composition("LiO")) == pytest.approx(-1.6)
    # LiO2 (x_O = 2/3) sits between LiO (-1.6 at 1/2) and O (0 at 1): -1.6 * (1/3) / (1/2).
    assert hull.hull_energy_per_atom(Composition("LiO2")) == pytest.approx(-1.6 * 2 / 3)
    # LiO3 at -0.5 lies above the LiO-O tie line (-0.8 at x_O = 3/4).
    assert hull.hull_energy_per_atom(Composition("LiO3")) == pytest.approx(-0.8)
    # A Li2O sample at total energy e: formation energy e - (2/3 mu_Li + 1/3 mu_O), E_hull from -2.0.
    e_total = -3.0
    e_form = hull.sample_energy(Composition("Li2O"), e_total)
    assert e_form == pytest.approx(-3.0 - (2 / 3 * -1.9 + 1 / 3 * -4.9))
    e_hull, error = hull.e_above_hull(Composition("Li2O"), e_form)
    assert error is None and e_hull == pytest.approx(e_form + 2.0)


def test_sample_on_tiny_hull_stable_and_missing_element_counted_not_stable():
    hull = tiny_hull()
    li2o = Structure(Lattice.cubic(4.6), ["Li", "Li", "O"], [[0.25] * 3, [0.75] * 3, [0, 0, 0]])
    xe = Structure(Lattice.cubic(4.6), ["Li", "Xe"], [[0, 0, 0], [0.5] * 3])
    # -4.3 eV/atom total: formation energy -4.3 + 2.9 = -1.4 eV/atom, 0.6 above Li2O's -2.0.
    above = stability.score_row(Sample(0, li2o), RelaxResult(-4.3, li2o, True, 5), hull)
    assert above["e_hull"] == pytest.approx(0.6) and above["stability_error"] is None
    below = stability.score_row(Sample(1, li2o), RelaxResult(-5.0, li2o, True, 5), hull)
    assert below["e_hull"] == pytest.approx(-5.0 + 2.9 + 2.0) and below["e_hull"] < 0
    missing = stability.score_row(Sample(2, xe), RelaxResult(-3.0, xe, True, 5), hull)
    assert missing["e_hull"] is None
    assert "no reference for element(s) Xe" in missing["stability_error"]
    assert hull.missing_elements(xe.composition) == ["Xe"]


def test_hull_json_round_trip_keeps_kind_and_hash():
    hull = tiny_hull()
    again = hull_from_json(json.loads(json.dumps(hull.to_json())))
    assert isinstance(again, FormationEnergyHull) and again.sha256 == hull.sha256
    assert again.sample_energy(Composition("LiO"), -3.0) == hull.sample_energy(Composition("LiO"), -3.0)


def test_shipped_mp_hull_loads_with_its_pinned_hash():
    hull = load_shipped_mp_hull()
    assert hull.sha256 == MP_HULL_SHA256 and hull.size > 90_000
    assert {"H", "O", "Fe", "U"} <= set(hull.elements)
    # TiO2 (rutile/anatase) is on MP's hull near -3.5 eV/atom.
    assert -3.7 < hull.hull_energy_per_atom(Composition("TiO2")) < -3.3


def test_damaged_shipped_hull_refused_by_hash(tmp_path):
    with gzip.open(shipped_mp_hull_path(), "rt") as handle:
        obj = json.load(handle)
    obj["entries"][0][2] -= 0.5  # one edited energy
    with gzip.open(shipped_mp_hull_path(tmp_path), "wt") as handle:
        json.dump(obj, handle)
    with pytest.raises(HullError, match="damaged"):
        load_shipped_mp_hull(tmp_path)
    with pytest.raises(HullError, match="missing"):
        load_shipped_mp_hull(tmp_path / "nowhere")


def test_sources_parsed_and_bad_row_named(tmp_path):
    path = tmp_path / "refs.json.gz"
    entry = {"energy": -9.0, "correction": 0.0, "composition": {"O": 2.0}, "entry_id": "mp-12957-GGA"}
    with gzip.open(path, "wt") as handle:
        json.dump({"O": entry}, handle)
    assert read_elemental_references(path) == {"O": {"energy_per_atom": -4.5, "entry_id": "mp-12957-GGA"}}
    rows = [("r2", "Li2O", -1.9), ("r3", "Li4O2", -2.0), ("r4", "LiO", -1.5)]
    assert lowest_per_formula(rows, "x.csv") == [("r3", "Li2O", -2.0), ("r4", "Li2O2", -1.5)]  # pymatgen names LiO a peroxide
    with pytest.raises(HullError, match="x.csv: r9: formula 'Qq2' does not parse"):
        lowest_per_formula([("r9", "Qq2", -1.0)], "x.csv")


def test_novelty_split_substitutes_train_recovered_for_mp20():
    assert novelty_split_name("mp20", "val+train_partial") == "val+train_recovered"
    assert novelty_split_name("mp20", "train_partial+train_recovered") == "train_recovered"
    assert novelty_split_name("perov5", "train") == "train"


def _copy_run(tmp_path: Path, rel: str) -> Path:
    target = tmp_path / "run"
    shutil.copytree(REPO / rel, target)
    return target


PEROV_QUICK = "results/perov5/random/quick-seed0-f3bbdc4a52"


def test_record_without_relaxed_energies_refused(tmp_path):
    run = _copy_run(tmp_path, PEROV_QUICK)
    table = pd.read_parquet(run / "per_sample.parquet").drop(columns=["relaxed_energy_per_atom"])
    table.to_parquet(run / "per_sample.parquet")
    with pytest.raises(RescoreError, match=r"per_sample.parquet: no stored relaxed_energy_per_atom"):
        rescore_run(run, hull=tiny_hull(), write=False)


def test_rescore_from_stored_energies(tmp_path):
    run = _copy_run(tmp_path, PEROV_QUICK)
    before = json.loads((run / "record.json").read_text())
    original = pd.read_parquet(REPO / PEROV_QUICK / "per_sample.parquet")
    # The dataset hull's E_hull: the table's own before the first re-score, kept in e_hull_dataset after it.
    dataset_e_hull = original["e_hull_dataset"] if "e_hull_dataset" in original else original["e_hull"]
    hull = load_shipped_mp_hull()
    record = rescore_run(run, hull=hull, progress=False)
    # Every stability change is in the committed record already: the re-score leaves its version, and says so.
    assert record["protocol_version"] == before["protocol_version"]
    assert record["details"]["stability"]["rescored"][-1]["to_protocol"] == before["protocol_version"]
    table = pd.read_parquet(run / "per_sample.parquet")
    subset = table[table["relax_steps"].notna()]
    assert len(subset) == record["metrics"]["n_relaxed"] == 100
    # The old E_hull kept beside the new; the new one recomputed by hand for one converged row.
    assert subset["e_hull_dataset"].tolist() == pytest.approx(dataset_e_hull.loc[subset.index].tolist(), nan_ok=True)
    row = subset[subset["relax_converged"].astype(bool) & subset["e_hull"].notna()].iloc[0]
    composition = Composition(row["formula"])
    expected = hull.sample_energy(composition, row["relaxed_energy_per_atom"]) - hull.hull_energy_per_atom(composition)
    assert row["e_hull"] == pytest.approx(expected)
    stable = (subset["e_hull"] <= 0) & subset["stability_error"].isna()
    assert record["metrics"]["n_stable"] == int(stable.sum())
    assert record["metrics"]["stable_rate"] == pytest.approx(stable.mean())
    assert record["details"]["stability"]["hull"]["sha256"] == MP_HULL_SHA256
    assert record["details"]["stability"]["rescored"][-1]["previous_metrics"]["stable_rate"] == \
        before["metrics"]["stable_rate"]
