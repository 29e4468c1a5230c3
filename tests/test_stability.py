"""Stability/S.U.N. family: tiny structures, a tiny hull; CHGNet runs for real except where noted."""

from __future__ import annotations

import gzip
import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Composition, Lattice, Structure

from harness import stability
from harness.datasets import Split
from harness.evaluation_types import Sample
from harness.io import sha256_file, sha256_text
from harness.protocol import family_keys
from harness.stability.hull import HullError, ReferenceHull, load_mp_hull
from harness.stability.matching import novel_flags, unique_flags
from harness.stability.mp_reference import load_hull
from harness.stability.relax import RelaxSettings, relax_batched
from tests.conftest import TINY_CARD, cscl, perovskite, rocksalt


def primitive(structure: Structure) -> Structure:
    """The 2-atom primitive cell of a conventional rock-salt cell (built directly: spglib is slow here)."""
    a = structure.lattice.a
    lattice = Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
    species = list(dict.fromkeys(site.specie.symbol for site in structure))
    return Structure(lattice, species, [[0, 0, 0], [0.5, 0.5, 0.5]])


def rotated(structure: Structure, angle_deg: float = 37.0) -> Structure:
    theta = np.radians(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    lattice = Lattice(structure.lattice.matrix @ rot.T)
    return Structure(lattice, structure.species, structure.frac_coords)


def tiny_hull(**extra) -> ReferenceHull:
    entries = [
        ("element:Na", "Na", -1.30),
        ("element:Cl", "Cl", -1.80),
        ("ref:NaCl", "Na1 Cl1", -3.00),
        ("ref:NaCl3", "Na1 Cl3", -2.00),
    ]
    elements = {"Na": {"energy_per_atom": -1.30}, "Cl": {"energy_per_atom": -1.80}}
    return ReferenceHull("tiny", "test", entries, elements, info=extra)


def tiny_split(structures, name="train") -> Split:
    digest = sha256_text("".join(s.to(fmt="poscar") for s in structures))
    return Split("tiny", name, list(structures), [f"t{i}" for i in range(len(structures))], digest)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "cache"))


# ---- hull -------------------------------------------------------------------------------------------------------


def test_hull_energies_against_known_tie_lines():
    hull = tiny_hull()
    assert hull.e_above_hull(Composition("NaCl"), -3.10)[0] == pytest.approx(-0.10)
    assert hull.e_above_hull(Composition("NaCl"), -3.00)[0] == pytest.approx(0.0)
    # NaCl3 at -2.00 lies above the NaCl-Cl tie line: (-3.0*2 + -1.8*2) / 4 = -2.4
    assert hull.e_above_hull(Composition("NaCl3"), -2.00)[0] == pytest.approx(0.40)
    assert hull.e_above_hull(Composition("Na"), -1.30)[0] == pytest.approx(0.0)


def test_element_missing_from_hull_is_reported_not_placed():
    e_hull, error = tiny_hull().e_above_hull(Composition("KCl"), -10.0)
    assert e_hull is None and "no reference for element(s) K" in error
    assert tiny_hull().missing_elements(Composition("KBr")) == ["Br", "K"]


def test_hull_json_roundtrip_and_tamper_detection(tmp_path):
    hull = tiny_hull(corrections="none")
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(hull.to_json()))
    again = load_hull(path)
    assert again.sha256 == hull.sha256 and again.size == 4
    with pytest.raises(HullError, match="does not match"):
        load_hull(path, expected_sha256="0" * 64)
    obj = hull.to_json()
    obj["entries"][2][2] = -3.5  # someone edits an energy
    path.write_text(json.dumps(obj))
    with pytest.raises(HullError, match="content hash"):
        load_hull(path)


def test_mp_hull_loader_checks_hash(tmp_path):
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

    diagram = PhaseDiagram(
        [
            PDEntry(Composition("Na"), -1.3),
            PDEntry(Composition("Cl"), -1.8),
            PDEntry(Composition("NaCl"), -6.0),
        ]
    )
    path = tmp_path / "2023-02-07-ppd-mp.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(diagram)))
    digest = sha256_file(path)
    with pytest.raises(HullError, match="not a known"):
        load_mp_hull(path)
    with pytest.raises(HullError, match="does not match"):
        load_mp_hull(path, expected_sha256="f" * 64)
    hull = load_mp_hull(path, expected_sha256=digest)
    assert hull.sha256 == digest and hull.size == 3
    assert hull.e_above_hull(Composition("NaCl"), -3.2)[0] == pytest.approx(-0.2)
    assert hull.e_above_hull(Composition("KCl"), -3.2)[1].startswith("no reference")


def test_no_mp2020_correction_on_chgnet_energies_for_any_hull():
    from harness.stability.hull import MPHull, mp2020_corrected_energy_per_atom

    feo = Structure(Lattice.cubic(4.3), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    corrected = mp2020_corrected_energy_per_atom(feo, -7.0)
    assert corrected < -7.0  # oxide and Fe U corrections are both negative (the calibration's rejected variant)
    assert tiny_hull().corrected_energy(feo, -7.0) == -7.0
    # Protocol 1.2: CHGNet already predicts MP-compatible energies, so an MP phase diagram gets them raw too.
    assert MPHull("pd", "test", diagram=None, sha256="0" * 64).corrected_energy(feo, -7.0) == -7.0


# ---- uniqueness / novelty ---------------------------------------------------------------------------------------


def test_duplicates_within_the_set_are_not_unique():
    nacl = rocksalt()
    flags = unique_flags(
        [nacl, rotated(primitive(nacl)), cscl(), None, nacl.copy().make_supercell([2, 1, 1])]
    )
    assert flags == [True, False, True, False, False]


def test_training_structure_in_disguise_is_not_novel():
    train = tiny_split([perovskite(), rocksalt()])
    disguised = rotated(rocksalt().make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 2]]), 23.0)
    disguised.translate_sites(list(range(len(disguised))), [0.13, 0.07, 0.21])
    other = rocksalt(5.64, "K", "Cl")  # same prototype, other formula: novel
    cs_type = Structure(
        Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )  # same formula, other prototype
    assert novel_flags([disguised, other, cs_type, None], train) == [False, True, True, False]


@settings(max_examples=8, deadline=None)
@given(angle=st.floats(0, 360), shift=st.tuples(*[st.floats(0, 1)] * 3), seed=st.integers(0, 2**16))
def test_novelty_invariant_to_rotation_translation_and_atom_order(angle, shift, seed):
    base = perovskite(3.99, "Ba", "Ti")
    order = np.random.default_rng(seed).permutation(len(base))
    moved = Structure(base.lattice, [base.species[i] for i in order], base.frac_coords[order])
    moved = rotated(moved, angle)
    moved.translate_sites(list(range(len(moved))), list(shift))
    assert novel_flags([moved], tiny_split([base])) == [False]


def test_subset_is_seeded_and_counts_every_sample():
    a, b = stability.select_subset(1000, 100, seed=0), stability.select_subset(1000, 100, seed=0)
    assert a == b and len(set(a)) == 100 and a == sorted(a)
    assert stability.select_subset(1000, 100, seed=1) != a
    assert stability.select_subset(7, 100, seed=0) == list(range(7))


# ---- relaxation (real CHGNet on 1-2 atom cells) ----------------------------------------------------------------


def test_relaxation_that_raises_is_recorded_and_the_rest_finish():
    isolated = Structure(Lattice.cubic(20.0), ["Na"], [[0, 0, 0]])  # CHGNet's graph refuses isolated atoms
    seen = {}
    results = relax_batched(
        [isolated, primitive(rocksalt())],
        RelaxSettings(max_steps=60),
        keys=["bad", "good"],
        on_result=lambda k, r: seen.setdefault(k, r),
    )
    assert results[0].error and results[0].energy_per_atom is None and not results[0].converged
    assert results[1].error is None and results[1].energy_per_atom < -2.0
    assert set(seen) == {"bad", "good"}


def test_a_collapsed_cell_is_stopped_before_chgnet_sees_it():
    from harness.stability.relax import VOLUME_PER_ATOM_BOUNDS

    collapsed = Structure(Lattice.cubic(1.0), ["He", "He"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # 0.5 Å^3/atom
    (result,) = relax_batched([collapsed], RelaxSettings(max_steps=5))
    assert VOLUME_PER_ATOM_BOUNDS[0] > 0.5
    assert result.energy_per_atom is None and "collapsed" in result.error and result.steps == 0


def test_batched_relaxation_follows_struct_optimizer():
    from harness.stability.relax import relax_one_struct_optimizer

    start = primitive(rocksalt(5.8))  # strained: a few FIRE steps
    settings = RelaxSettings(max_steps=60)
    batched = relax_batched([start], settings)[0]
    baseline = relax_one_struct_optimizer(start, settings)
    assert batched.converged and baseline.converged and batched.steps >= 2
    assert abs(batched.steps - baseline.steps) <= 1
    assert batched.energy_per_atom == pytest.approx(baseline.energy_per_atom, abs=2e-4)


def test_one_pass_forces_and_stresses_match_chgnet_predict_graph():
    """The relaxation's single-backward energies/forces/stresses equal CHGNet's own predict_graph (float noise)."""
    from harness.stability.relax import load_relaxer

    rng = np.random.default_rng(0)
    structures = []
    for base in (perovskite(4.1), rocksalt(5.3), cscl(4.3)):
        s = base.copy()
        s.apply_strain(rng.uniform(-0.04, 0.04, 3))
        for i, shift in enumerate(rng.normal(0.0, 0.15, (len(s), 3))):  # seeded rattle: nonzero forces
            s.translate_sites([i], shift, frac_coords=False)
        structures.append(s)
    model = load_relaxer("chgnet").model
    ours = load_relaxer("chgnet").predict(structures, "efs", 32)
    theirs = model.predict_graph([model.graph_converter(s) for s in structures], task="efs", batch_size=32)
    for a, b, s in zip(ours, theirs, structures):
        assert isinstance(a, dict) and set(a) >= {"e", "f", "s"}
        assert np.asarray(a["f"]).shape == (len(s), 3) and np.asarray(a["s"]).shape == (3, 3)
        assert np.abs(b["f"]).max() > 0.05 and np.abs(b["s"]).max() > 0.05  # the comparison is not of zeros
        np.testing.assert_allclose(float(a["e"]), float(b["e"]), rtol=0, atol=1e-6)
        # float32 summation order differs between the two backward passes: ~1e-5 eV/Å, 1e-4 of FIRE's fmax
        np.testing.assert_allclose(a["f"], b["f"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(a["s"], b["s"], rtol=1e-5, atol=1e-3)


def test_evaluate_end_to_end_with_resume(tmp_path, monkeypatch):
    hull_path = tmp_path / "tiny-hull.json"
    hull_path.write_text(json.dumps(tiny_hull().to_json()))
    nacl = primitive(rocksalt())
    samples = [
        Sample(0, nacl),
        Sample(1, rotated(nacl, 50.0)),  # duplicate of 0
        Sample(2, primitive(rocksalt(6.29, "K", "Cl"))),  # K has no reference
        Sample(3, None, "lattice length <= 0"),
        Sample(4, Structure(Lattice.cubic(20.0), ["Cl"], [[0, 0, 0]])),  # relaxation raises
    ]
    train = tiny_split([rocksalt()])
    kwargs = dict(
        dataset="tiny",
        train=train,
        n_relax=100,
        seed=0,
        hull=hull_path,
        work_dir=tmp_path / "work",
        progress=False,
    )
    first = stability.evaluate(samples, **kwargs)
    t = first.table
    assert list(t.index) == [0, 1, 2, 3, 4] and first.metrics["n_relaxed"] == 5
    assert tuple(first.metrics) == family_keys("stability")  # the keys the protocol's specification gives it
    assert t.loc[0, "stable"] and t.loc[0, "e_hull"] < 0 and t.loc[0, "relax_converged"]
    assert t.loc[0, "e_hull"] == pytest.approx(t.loc[0, "relaxed_energy_per_atom"] + 3.0, abs=1e-9)
    # U and N are judged on the relaxed structure, else the input (4); an unconstructed sample is neither (3).
    assert list(t["unique"]) == [True, False, True, False, True]
    assert list(t["novel"]) == [False, False, True, False, True]
    assert not t["sun"].any() and first.metrics["sun_rate"] == 0.0
    assert "no reference for element(s) K" in t.loc[2, "stability_error"] and not t.loc[2, "stable"]
    assert t.loc[3, "stability_error"].startswith("not constructed")
    assert t.loc[4, "stability_error"].startswith("relaxation failed")
    assert first.metrics["stable_rate"] == pytest.approx(2 / 5)  # both NaCl copies lie below the tiny hull
    assert first.info["compositions_without_reference"] == ["KCl"]
    assert first.info["relax"]["model"] == "0.3.0" and first.info["hull"]["sha256"] == tiny_hull().sha256

    # A rerun after a kill: finished structures are read back, only the missing one is relaxed again.
    relaxed_again = []
    real = stability.relax_batched
    monkeypatch.setattr(
        stability,
        "relax_batched",
        lambda structures, *a, **k: relaxed_again.extend(k["keys"]) or real(structures, *a, **k),
    )
    next((tmp_path / "work").glob("relax-*/2.json")).unlink()
    second = stability.evaluate(samples, **kwargs)
    assert relaxed_again == [2] and second.info["n_resumed"] == 3
    assert second.metrics == first.metrics
    assert second.table.drop(columns=["relaxed_energy_per_atom", "e_hull"]).equals(
        first.table.drop(columns=["relaxed_energy_per_atom", "e_hull"])
    )
    np.testing.assert_allclose(
        second.table["e_hull"].astype(float), first.table["e_hull"].astype(float), atol=1e-5, equal_nan=True
    )


def test_hull_cli_show_without_cache(tmp_path, monkeypatch, capsys):
    import argparse

    from harness.cli import hull as hull_cli

    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path))
    parser = argparse.ArgumentParser()
    hull_cli.register(parser.add_subparsers())
    args = parser.parse_args(["hull", "show", "--dataset", "perov5"])
    assert args.func(args) == 1 and "no cached hull" in capsys.readouterr().out
    (tmp_path / "hulls").mkdir(exist_ok=True)
    (tmp_path / "hulls" / "perov5-abc.json").write_text(json.dumps(tiny_hull().to_json()))
    assert args.func(args) == 0 and tiny_hull().sha256 in capsys.readouterr().out


# ---- references relaxed on demand (issue #4) -------------------------------------------------------------------


def _spy_reference_relaxations(monkeypatch) -> list[list[str]]:
    """Record the keys of every batched reference relaxation (one list per relax_batched call)."""
    from harness.stability import ondemand

    calls: list[list[str]] = []
    real = ondemand.relax_batched
    monkeypatch.setattr(
        ondemand, "relax_batched", lambda structures, *a, **k: calls.append(list(k["keys"])) or real(structures, *a, **k)
    )
    return calls


def strained_nacl_hull() -> tuple[ReferenceHull, dict[str, Structure]]:
    """Na-Cl hull: a strained NaCl at its static CHGNet energy on the hull, a NaCl3 0.5 eV/atom above it."""
    from harness.stability.relax import score_static

    nacl = primitive(rocksalt(6.1))  # ~8% stretched: relaxing it gains tens of meV/atom
    nacl3 = Structure(Lattice.cubic(4.0), ["Na", "Cl", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    static = score_static([nacl])[0]
    above = (2 * static + 2 * -1.0) / 4 + 0.5  # 0.5 eV/atom above the NaCl-Cl tie line
    entries = [
        ("element:Na:test", "Na", -1.0),
        ("element:Cl:test", "Cl", -1.0),
        ("train:nacl", "Na1 Cl1", round(static, 6)),
        ("train:nacl3", "Na1 Cl3", round(above, 6)),
    ]
    elements = {"Na": {"energy_per_atom": -1.0}, "Cl": {"energy_per_atom": -1.0}}
    return ReferenceHull("strained", "test", entries, elements), {"train:nacl": nacl, "train:nacl3": nacl3}


def test_reference_relaxed_on_demand_lowers_the_hull_and_is_cached(monkeypatch):
    from harness.stability.ondemand import relaxed_on_demand

    hull, structures = strained_nacl_hull()
    settings = RelaxSettings(max_steps=40)
    calls = _spy_reference_relaxations(monkeypatch)
    relaxed = relaxed_on_demand(hull, settings=settings, margin=0.1, structures=structures, progress=False)
    static_energy = hull.entries[2][2]
    sample_energy = static_energy - 0.01
    static_e_hull = hull.e_above_hull(Composition("NaCl"), sample_energy)[0]
    relaxed.prepare([Composition("NaCl"), Composition("Na2Cl2")])
    assert calls == [["train:nacl"]]  # NaCl3 lies 0.5 eV/atom above: beyond the margin, kept static
    gain = static_energy - relaxed.relaxed["train:nacl"]
    assert gain > 0.005
    e_hull, error = relaxed.e_above_hull(Composition("NaCl"), sample_energy)
    assert error is None and e_hull == pytest.approx(static_e_hull + gain, abs=1e-9)
    described = relaxed.describe()
    assert described["sha256"] == hull.sha256  # the static artifact stays the named one
    info = described["reference_relaxation"]
    assert info["margin_ev_per_atom"] == 0.1 and "within 0.1 eV/atom" in described["treatment"]["dataset_structures"]
    assert (info["n_entries_in_systems"], info["n_entries_within_margin"]) == (2, 1)
    assert (info["n_relaxed_now"], info["n_reused_from_cache"], info["n_lowered"]) == (1, 0, 1)

    # A second evaluation reads the cache: no relaxation, the same E_hull.
    again = relaxed_on_demand(hull, settings=settings, margin=0.1, structures=structures, progress=False)
    assert again.e_above_hull(Composition("NaCl"), sample_energy)[0] == pytest.approx(e_hull, abs=1e-12)
    assert calls == [["train:nacl"]]
    assert (again.describe()["reference_relaxation"]["n_reused_from_cache"], again.counts["relaxed_now"]) == (1, 0)
    # Without a margin every entry of the system is relaxed; the cached NaCl is not redone.
    everything = relaxed_on_demand(hull, settings=settings, margin=None, structures=structures, progress=False)
    everything.prepare([Composition("NaCl3")], progress=False)
    assert calls[1:] == [["train:nacl3"]]


def test_evaluate_relaxes_dataset_references_in_one_batch(tiny_dataset, tmp_path, monkeypatch):
    """A dataset structure scored as a sample sits on the hull once its reference is relaxed too."""
    from harness.datasets import load_split
    from harness.stability.relax import score_static

    test = load_split("tiny", "test")
    refs = {"test:tiny-0": test.structures[0], "test:tiny-5": test.structures[5]}  # NaCl and MgO rock salts
    static = score_static(list(refs.values()))
    entries = [(f"element:{el}:test", el, -1.0) for el in ("Cl", "Mg", "Na", "O")]
    entries += [(i, s.composition.formula, round(e, 6)) for (i, s), e in zip(refs.items(), static)]
    elements = {el: {"energy_per_atom": -1.0} for el in ("Cl", "Mg", "Na", "O")}
    info = {"dataset": "tiny", "splits": {"test": test.sha256}}
    hull_path = tmp_path / "tiny-hull.json"
    hull_path.write_text(json.dumps(ReferenceHull("tiny", "test", entries, elements, info=info).to_json()))
    calls = _spy_reference_relaxations(monkeypatch)
    samples = [Sample(0, primitive(test.structures[0])), Sample(1, primitive(test.structures[5]))]
    kwargs = dict(dataset="tiny", train=tiny_split([cscl()]), n_relax=10, seed=0, hull=hull_path, progress=False)
    result = stability.evaluate(samples, **kwargs)
    assert calls == [["test:tiny-0", "test:tiny-5"]]  # both systems' references in one batched call
    relaxation = result.info["hull"]["reference_relaxation"]
    assert relaxation["n_relaxed_now"] == 2 and relaxation["n_chemical_systems"] == 2
    # Same structure, same relaxation on both sides: E_hull ~ 0, where static references put MgO below the hull.
    np.testing.assert_allclose(result.table["e_hull"].astype(float), 0.0, atol=2e-3)
    against_static = result.table["relaxed_energy_per_atom"].astype(float).to_numpy() - np.asarray(static)
    assert against_static.min() < -3e-3
    assert stability.evaluate(samples, **kwargs).info["hull"]["reference_relaxation"]["n_reused_from_cache"] == 2
    assert len(calls) == 1


def test_hull_sha256_option_pins_the_hull_file(tmp_path, monkeypatch):
    import argparse

    from harness.cli import evaluate as evaluate_cli
    from harness.cli.common import evaluation_request

    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers())
    digest = "AB" * 32
    args = parser.parse_args(["evaluate", "s.extxyz", "--dataset", "tiny", "--hull", "mp.pkl.gz", "--hull-sha256", digest])
    request = evaluation_request(args)
    assert request.hull_sha256 == digest.lower() and request.hull == "mp.pkl.gz"
    # The named hulls need no pin, and take none.
    assert evaluation_request(parser.parse_args(["evaluate", "s.extxyz", "--dataset", "tiny"])).hull is None
    with pytest.raises(SystemExit):
        evaluation_request(parser.parse_args(["evaluate", "s.extxyz", "--dataset", "tiny", "--hull", "dataset",
                                              "--hull-sha256", digest]))
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "s.extxyz", "--dataset", "tiny", "--hull-sha256", "xyz"])
    with pytest.raises(SystemExit):
        evaluation_request(parser.parse_args(["evaluate", "s.extxyz", "--dataset", "tiny", "--hull-sha256", digest]))


# ---- shipped hulls and relaxed references ----------------------------------------------------------------------


def test_shipped_relaxed_references_spare_a_fresh_cache_the_relaxations(tmp_path, monkeypatch):
    from harness.stability import shipped
    from harness.stability.ondemand import relaxed_on_demand

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    hull, structures = strained_nacl_hull()
    settings = RelaxSettings(max_steps=40)
    first = relaxed_on_demand(hull, settings=settings, structures=structures, progress=False)
    e_hull = first.e_above_hull(Composition("NaCl"), hull.entries[2][2] - 0.01)[0]
    path, n = shipped.export_relaxed(first.cache)
    assert n == 2 and path.parent == tmp_path / "shipped"
    assert shipped.export_relaxed(first.cache)[0].read_bytes() == path.read_bytes()  # deterministic bytes

    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "fresh-cache"))  # a new machine: no per-entry files
    calls = _spy_reference_relaxations(monkeypatch)
    fresh = relaxed_on_demand(hull, settings=settings, structures=structures, progress=False)
    assert fresh.e_above_hull(Composition("NaCl"), hull.entries[2][2] - 0.01)[0] == pytest.approx(e_hull, abs=1e-12)
    assert calls == [] and fresh.counts["reused"] == 2
    # other settings are another key: nothing shipped applies, the entries are relaxed
    other = relaxed_on_demand(hull, settings=RelaxSettings(max_steps=41), structures=structures, progress=False)
    other.prepare([Composition("NaCl")])
    assert calls == [["train:nacl", "train:nacl3"]]


def test_shipped_hull_is_used_when_its_key_matches_and_refused_when_damaged(tiny_dataset, tmp_path, monkeypatch):
    from harness.datasets import load_split
    from harness.stability import reference, shipped
    from harness.stability.relax import DEFAULT_SETTINGS

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    splits = reference.hull_splits(TINY_CARD)
    key = reference._cache_key("tiny", {s: load_split("tiny", s).sha256 for s in splits}, DEFAULT_SETTINGS)
    with pytest.raises(FileNotFoundError, match="bench hull build"):
        reference.load_or_build_dataset_hull(TINY_CARD, build=False)
    hull = tiny_hull(cache_key=key)
    shipped.write_gzip_json(shipped.hull_file("tiny", key), hull.to_json())
    loaded = reference.load_or_build_dataset_hull(TINY_CARD, build=False)
    assert loaded.sha256 == hull.sha256 and reference.cached_hull_path("tiny", key).exists()

    reference.cached_hull_path("tiny", key).unlink()
    damaged = hull.to_json()
    damaged["entries"][2][2] -= 0.1  # one energy edited, the recorded hash kept
    shipped.write_gzip_json(shipped.hull_file("tiny", key), damaged)
    with pytest.raises(HullError, match=r"shipped hull .*tiny-.*json.gz is damaged"):
        reference.load_or_build_dataset_hull(TINY_CARD, build=False)


def test_hull_cli_export_writes_the_cached_hull_as_package_data(tiny_dataset, tmp_path, capsys):
    import argparse

    from harness.cli import hull as hull_cli
    from harness.datasets import load_split
    from harness.io import atomic_write_json
    from harness.stability import reference, shipped
    from harness.stability.relax import DEFAULT_SETTINGS

    parser = argparse.ArgumentParser()
    hull_cli.register(parser.add_subparsers())
    args = parser.parse_args(["hull", "export", "--dataset", "tiny", "--out-dir", str(tmp_path / "out")])
    assert args.func(args) == 1 and "bench hull build --dataset tiny" in capsys.readouterr().out
    key = reference._cache_key("tiny", {s: load_split("tiny", s).sha256 for s in reference.hull_splits(TINY_CARD)},
                               DEFAULT_SETTINGS)
    atomic_write_json(reference.cached_hull_path("tiny", key), tiny_hull(cache_key=key).to_json())
    assert args.func(args) == 0
    assert shipped.load_shipped_hull("tiny", key, tmp_path / "out").sha256 == tiny_hull().sha256
    assert "(0 entries)" in capsys.readouterr().out


def test_linear_program_hull_energy_equals_the_phase_diagram_and_handles_many_elements():
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

    from harness.stability import hull as hull_module
    from harness.stability.hull import lowest_energy_per_atom

    rng = np.random.default_rng(0)
    elements = ["Li", "Fe", "P", "O"]
    entries = [PDEntry(Composition(el), -float(rng.uniform(1, 4))) for el in elements]
    for _ in range(40):
        amounts = rng.integers(0, 4, size=len(elements))
        if amounts.sum() == 0:
            continue
        composition = Composition({el: int(a) for el, a in zip(elements, amounts) if a})
        entries.append(PDEntry(composition, composition.num_atoms * -float(rng.uniform(2, 6))))
    diagram = PhaseDiagram(entries)
    for _ in range(25):
        amounts = rng.integers(1, 6, size=len(elements))
        composition = Composition(dict(zip(elements, amounts.tolist())))
        assert lowest_energy_per_atom(entries, composition) == pytest.approx(
            diagram.get_hull_energy_per_atom(composition), abs=1e-8)
    # a hull answers a composition with more elements than DIAGRAM_MAX_ELEMENTS, through the linear program
    many = ["H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si"]
    assert len(many) > hull_module.DIAGRAM_MAX_ELEMENTS
    big = ReferenceHull("many", "test", [(f"element:{el}", el, -1.0) for el in many] + [("c:1", "Na1 F1", -3.0)],
                        {el: {} for el in many})
    composition = Composition({el: 1 for el in many})
    e_hull, error = big.e_above_hull(composition, -1.0)
    # the hull at one atom of each element: 10 atoms as elements at -1 eV/atom, Na and F as NaF at -3 eV/atom
    assert error is None and e_hull == pytest.approx(-1.0 - (-(10 * 1.0 + 2 * 3.0) / 12), abs=1e-9)


@pytest.mark.parametrize(("pending", "workers", "size"), [(1000, 2, 32), (100, 2, 6), (16, 2, 1), (5, 4, 1), (10_000, 8, 32)])
def test_relaxations_are_shared_in_small_chunks_every_worker_takes_from(pending, workers, size):
    assert stability.relaxation_chunk_size(pending, workers, 32) == size
    assert -(-pending // size) >= min(pending, 8 * workers)  # enough units for the last ones to balance


def test_packed_relaxations_carry_a_run_to_a_fresh_folder_and_only_for_the_structures_they_relaxed(tmp_path, monkeypatch):
    import shutil

    from harness.stability.carry import ARCHIVE_NAME, pack, restore

    hull_path = tmp_path / "tiny-hull.json"
    hull_path.write_text(json.dumps(tiny_hull().to_json()))
    nacl = primitive(rocksalt())
    samples = [Sample(0, nacl), Sample(1, primitive(rocksalt(5.9))), Sample(2, None, "lattice length <= 0")]
    run = tmp_path / "run"
    kwargs = dict(dataset="tiny", train=tiny_split([rocksalt()]), n_relax=100, seed=0, hull=hull_path,
                  work_dir=run / "stability" / "target", progress=False)
    first = stability.evaluate(samples, **kwargs)
    assert pack(run) == (2, 2) and pack(run) == (2, 0)  # a second pack adds nothing
    shutil.rmtree(run / "stability")  # what a new session's clone holds: the archive alone
    assert restore(run) == 2 and restore(run) == 0

    relaxed_again = []
    real = stability.relax_batched
    monkeypatch.setattr(stability, "relax_batched",
                        lambda structures, *a, **k: relaxed_again.extend(k["keys"]) or real(structures, *a, **k))
    second = stability.evaluate(samples, **kwargs)
    assert relaxed_again == [] and second.metrics == first.metrics
    np.testing.assert_allclose(second.table["e_hull"].astype(float), first.table["e_hull"].astype(float), atol=1e-9,
                               equal_nan=True)

    # A sample that comes out differently in the resumed run is relaxed again, not given the carried result.
    samples[1] = Sample(1, primitive(rocksalt(6.0)))
    stability.evaluate(samples, **kwargs)
    assert relaxed_again == [1]

    bad = run / ARCHIVE_NAME
    bad.write_bytes(gzip.compress(b'{"path": "../elsewhere.json", "result": {}}\n'))
    with pytest.raises(ValueError, match="outside the run's stability folder"):
        restore(run)


def test_bench_pack_needs_a_run_folder_and_claiming_the_run_again_restores_the_pack(tmp_path, capsys):
    import shutil

    from harness.cli.main import main
    from harness.runner import claim_run_dir
    from harness.stability.relax import RelaxResult

    assert main(["pack", str(tmp_path)]) == 2 and "not a run folder" in capsys.readouterr().err
    run = tmp_path / "run"
    claim_run_dir(run, {"plugin": "toy"})
    result = RelaxResult(-3.5, primitive(rocksalt()), True, 12, None, 1.5)
    path = run / "stability" / "target" / "relax-abc" / "0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**result.to_json(), "input_sha256": "f" * 64}))
    assert main(["pack", str(run)]) == 0 and "1 relaxations (1 new)" in capsys.readouterr().out
    shutil.rmtree(run / "stability")
    claim_run_dir(run, {"plugin": "toy"})  # the same command, in a fresh clone
    back = json.loads(path.read_text())
    assert back["input_sha256"] == "f" * 64 and back["energy_per_atom"] == -3.5 and back["steps"] == 12
    restored = RelaxResult.from_json(back).structure
    assert np.allclose(restored.lattice.matrix, result.structure.lattice.matrix, atol=1e-6)
    assert [s.species_string for s in restored] == [s.species_string for s in result.structure]
    (run / "record.json").write_text("{}")
    assert main(["pack", str(run)]) == 2 and "is finished" in capsys.readouterr().err
