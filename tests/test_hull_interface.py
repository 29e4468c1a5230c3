"""Every reference hull implements the one ``Hull`` interface that scoring uses, with unchanged E_hull values."""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import pickle
import pkgutil

import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Lattice, Structure

import harness.stability
from harness.io import sha256_file
from harness.stability import _load_hull, score_row
from harness.stability.hull import EntryPoolHull, Hull, MPHull, ReferenceHull
from harness.stability.mp_reference import FormationEnergyHull
from harness.stability.ondemand import RelaxedReferenceCache, RelaxedReferenceHull, relaxed_on_demand
from harness.stability.relax import DEFAULT_SETTINGS

# Na-Cl, eV/atom. On the hull: Na (x_Cl 0), NaCl (1/2), Cl (1); NaCl3 (3/4) lies 0.25 above the NaCl-Cl tie line
# and Na3Cl (1/4) 0.5 above the Na-NaCl one.
ENTRIES = [("element:Na", "Na", -1.0), ("element:Cl", "Cl", -1.5), ("train:nacl", "NaCl", -3.0),
           ("train:nacl3", "NaCl3", -2.0), ("train:na3cl", "Na3Cl", -1.5)]
ELEMENTS = {"Na": {"energy_per_atom": -1.0}, "Cl": {"energy_per_atom": -1.5}}
RELAXED_NACL = -3.2  # NaCl's reference once relaxed: a cached record, so no relaxation runs


def tie(x: float, left: tuple[float, float], right: tuple[float, float]) -> float:
    """The energy at Cl fraction ``x`` on the line through two (x, energy) points."""
    (x0, e0), (x1, e1) = left, right
    return e0 + (x - x0) / (x1 - x0) * (e1 - e0)


def expected(nacl: float) -> list[tuple[str, float, tuple[float | None, str | None]]]:
    """(formula, energy per atom, E_hull) by hand, NaCl's reference at ``nacl``; KCl has no K reference."""
    na, cl, mid = (0.0, -1.0), (1.0, -1.5), (0.5, nacl)
    return [
        ("NaCl", -3.1, (-3.1 - nacl, None)),
        ("NaCl2", -2.0, (-2.0 - tie(2 / 3, mid, cl), None)),
        ("NaCl3", -2.0, (-2.0 - tie(3 / 4, mid, cl), None)),
        ("Na", -0.9, (-0.9 - -1.0, None)),
        ("Na2Cl", -2.2, (-2.2 - tie(1 / 3, na, mid), None)),
        ("KCl", -3.0, (None, "no reference for element(s) K")),
    ]


def assert_golden(hull: Hull, nacl: float, label: str) -> None:
    for formula, energy, (e_hull, error) in expected(nacl):
        got = hull.e_above_hull(Composition(formula), energy)
        assert got[1] == error, (label, formula)
        assert got[0] == pytest.approx(e_hull, abs=1e-12), (label, formula)


def phase_diagram() -> PhaseDiagram:
    return PhaseDiagram([PDEntry(Composition(f), e * Composition(f).num_atoms, name=f) for _, f, e in ENTRIES])


def relaxed_nacl_hull(cache_root) -> RelaxedReferenceHull:
    """The Na-Cl hull with NaCl's reference relaxed to ``RELAXED_NACL`` (read from a cache record)."""
    base = ReferenceHull("nacl", "test", ENTRIES, ELEMENTS)
    cache = RelaxedReferenceCache(base.sha256, DEFAULT_SETTINGS, cache_root)
    cache.save("train:nacl", {"energy_per_atom": RELAXED_NACL, "converged": True, "error": None})
    return relaxed_on_demand(base, structures={}, cache_root=cache_root, progress=False)


@pytest.fixture
def no_relaxation(monkeypatch):
    from harness.stability import ondemand

    def refuse(*args, **kwargs):
        raise AssertionError("a reference was relaxed: the test's cache should have served it")

    monkeypatch.setattr(ondemand, "relax_batched", refuse)


def every_hull(tmp_path) -> dict[str, Hull]:
    return {
        "reference": ReferenceHull("nacl", "test", ENTRIES, ELEMENTS),
        "formation": FormationEnergyHull("nacl-form", "test", ENTRIES, ELEMENTS),
        "mp": MPHull("nacl-pd", "test", phase_diagram(), "0" * 64),
        "relaxed": relaxed_nacl_hull(tmp_path / "relaxed"),
    }


def hull_classes() -> set[type]:
    """Every class in ``harness.stability`` that places an energy on a hull (has ``e_above_hull``)."""
    found = set()
    for module in pkgutil.iter_modules(harness.stability.__path__, "harness.stability."):
        for _, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if cls.__module__.startswith("harness.stability") and hasattr(cls, "e_above_hull"):
                found.add(cls)
    return found


def test_every_hull_class_implements_the_interface():
    classes = hull_classes()
    assert {ReferenceHull, FormationEnergyHull, MPHull, RelaxedReferenceHull} <= classes
    for cls in classes:
        assert issubclass(cls, Hull), f"{cls.__name__} places energies on a hull but is not a Hull"
        if cls not in (Hull, EntryPoolHull):
            assert not inspect.isabstract(cls), f"{cls.__name__} leaves {sorted(cls.__abstractmethods__)} undefined"


def test_every_hull_gives_the_same_e_above_hull_as_before(tmp_path, no_relaxation):
    for kind, hull in every_hull(tmp_path).items():
        assert isinstance(hull, Hull)
        assert_golden(hull, RELAXED_NACL if kind == "relaxed" else -3.0, kind)
        assert hull.missing_elements(Composition("KBr")) == ["Br", "K"]


def test_every_hull_describes_itself_for_the_record(tmp_path, no_relaxation):
    for kind, hull in every_hull(tmp_path).items():
        described = hull.describe()
        assert {k: described[k] for k in ("name", "source", "sha256", "size", "n_elements")} == {
            "name": hull.name, "source": hull.source, "sha256": hull.sha256, "size": 5, "n_elements": 2,
        }, kind
    hulls = every_hull(tmp_path)
    # The relaxed hull names its static artifact; a formation-energy hull says so; the content hash is unchanged.
    assert hulls["relaxed"].describe()["sha256"] == hulls["reference"].sha256
    assert hulls["reference"].sha256 == "ed8479feb21719470341ef00d9a6c0194705dfd467030bd70c8d45b77f9455e8"
    assert hulls["formation"].describe()["kind"] == "formation_energy"
    assert "reference_relaxation" in hulls["relaxed"].describe()


def test_scoring_takes_each_hull_through_the_interface(tmp_path, no_relaxation):
    """``score_row`` places a relaxed NaCl the same way on every hull: its convention's energy, then E_hull."""
    from harness.evaluation_types import Sample
    from harness.stability.relax import RelaxResult

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    result = RelaxResult(energy_per_atom=-3.1, structure=nacl, converged=True, steps=3)
    for kind, hull in every_hull(tmp_path).items():
        hull.prepare([nacl.composition], progress=False)
        row = score_row(Sample(index=0, structure=nacl), result, hull)
        energy = hull.corrected_energy(nacl, -3.1)
        assert row["e_hull"] == hull.e_above_hull(nacl.composition, energy)[0], kind
        assert row["stability_error"] is None, kind
    # Only the formation-energy hull moves the sample's energy: minus the elements' energies, weighted.
    assert every_hull(tmp_path)["formation"].corrected_energy(nacl, -3.1) == pytest.approx(-3.1 + (1.0 + 1.5) / 2)


def test_every_kind_the_evaluation_loads_is_a_hull(tmp_path, isolated, no_relaxation):
    """``mp`` (shipped), an xtalbench JSON (its references relaxed on demand) and a pinned phase-diagram pickle."""
    json_path = tmp_path / "nacl.json"
    json_path.write_text(json.dumps(ReferenceHull("nacl", "test", ENTRIES, ELEMENTS).to_json()))
    pickle_path = tmp_path / "nacl.pkl.gz"
    with gzip.open(pickle_path, "wb") as handle:
        pickle.dump(phase_diagram(), handle)
    loaded = {
        "mp": _load_hull("mp20", "mp", None, None, DEFAULT_SETTINGS, progress=False),
        "json": _load_hull("mp20", json_path, None, None, DEFAULT_SETTINGS, progress=False),
        "pickle": _load_hull("mp20", pickle_path, sha256_file(pickle_path), None, DEFAULT_SETTINGS, progress=False),
    }
    assert [type(h) for h in loaded.values()] == [FormationEnergyHull, RelaxedReferenceHull, MPHull]
    for kind, hull in loaded.items():
        assert isinstance(hull, Hull), kind
    for kind in ("json", "pickle"):
        assert_golden(loaded[kind], -3.0, kind)
