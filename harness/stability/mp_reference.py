"""The Materials Project reference hull (protocol 1.2's default), in formation-energy space.

The papers compare a sample's relaxed CHGNet energy with the Materials Project hull (FlowMM's public scripts, which
SymmCD and SymmBFN follow: raw CHGNet energy per atom minus the hull energy of MP's MP2020-corrected entries).
Matbench Discovery's phase-diagram file is not available offline, so the hull is rebuilt from two public files
(``reference/mp/SOURCES.md``):

- ``matbench_mp_e_form.csv.gz``: 132,752 MP DFT formation energies per atom by formula (corrected as MP did);
- ``2023-02-07-mp-elemental-reference-entries.json.gz``: MP's lowest-energy GGA elemental entries;
- MP-20's own DFT formation energies (its splits that carry them): MP entries that the older Matbench file lacks.

The hull's entries are the lowest formation energy of each reduced formula, with every element at 0. A sample's
side: formation energy = CHGNet relaxed energy per atom - sum_i x_i mu_i, mu_i the elemental entries' energy per atom,
with no correction on top (CHGNet learnt MP's corrected energies; measured in
``results/benchmarks/mp_hull_calibration.json``, which also fixes this convention). In total-energy terms this is
FlowMM's ``E_CHGNet - E_hull(MP)``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.io import sha256_file
from harness.stability.hull import HULL_FORMAT, Hull, HullError, ReferenceHull, load_mp_hull

__all__ = [
    "E_FORM_FILE",
    "ELEMENTS_FILE",
    "FORMATION_KIND",
    "MP_HULL_NAME",
    "MP_HULL_SHA256",
    "FormationEnergyHull",
    "build_mp_hull",
    "load_shipped_mp_hull",
    "shipped_mp_hull_path",
]

FORMATION_KIND = "formation_energy"
MP_HULL_NAME = "mp-eform-v1"
# Content hash (``entries_hash``) of the hull ``build_mp_hull`` makes from the two files below; the shipped copy
# must have it, so a damaged or edited package file is refused rather than silently changing every E_hull.
MP_HULL_SHA256 = "42ac77af8e5ea3c56848fafc53981c01dda316ccdc4e00f3c3efc5a7ac1fbb9f"


@dataclass(frozen=True)
class SourceFile:
    filename: str
    sha256: str
    rows: int


E_FORM_FILE = SourceFile(
    "matbench_mp_e_form.csv.gz", "5e5a424cd78b90054c04792eaa6b412899faa822a92f1d0705e74f30d2fdf88a", 132_752
)
ELEMENTS_FILE = SourceFile(
    "2023-02-07-mp-elemental-reference-entries.json.gz",
    "9fd6ef848a91c88840a0d1709b5856d0edb4af22095237e59db52f2acd6bbf79",
    89,
)
CONVENTION = (
    "E_hull = (E_CHGNet relaxed per atom - sum_i x_i mu_i) - hull formation energy per atom; mu_i: MP 2023-02-07 "
    "GGA elemental reference entries (energy per atom, no correction); no MP2020 correction on the sample "
    "(CHGNet predicts MP-compatible energies); hull: the lowest DFT formation energy of each reduced "
    "formula over Matbench mp_e_form and MP-20's train_partial/val/test, elements at 0"
)
ELEMENT_PREFIX = "element:"


class FormationEnergyHull(ReferenceHull):
    """A hull whose entries are formation energies per atom; samples are placed on it through ``sample_energy``."""

    def sample_energy(self, composition, energy_per_atom: float) -> float:
        """Formation energy per atom of a composition at a total energy per atom (the elements' mu subtracted)."""
        missing = self.missing_elements(composition)
        if missing:
            raise ValueError(f"no reference for element(s) {', '.join(missing)}")
        total = composition.num_atoms
        return float(
            energy_per_atom
            - sum(amount / total * self.elements[el.symbol]["energy_per_atom"] for el, amount in composition.items())
        )

    def corrected_energy(self, structure, energy_per_atom: float) -> float:
        """The energy to compare with this hull: the sample's formation energy per atom (``sample_energy``)."""
        return self.sample_energy(structure.composition, energy_per_atom)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": FORMATION_KIND}

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "kind": FORMATION_KIND}


def shipped_mp_hull_path(directory: Path | None = None) -> Path:
    from harness.stability.shipped import SHIPPED_DIR

    return (directory or SHIPPED_DIR) / f"{MP_HULL_NAME}.json.gz"


def load_shipped_mp_hull(directory: Path | None = None, expected_sha256: str | None = None) -> FormationEnergyHull:
    """The shipped MP hull, refused (``HullError``) when absent or when its content hash is not the pinned one."""
    path = shipped_mp_hull_path(directory)
    expected = expected_sha256 or MP_HULL_SHA256
    if not path.exists():
        raise HullError(f"the Materials Project hull {path} is missing; rebuild it with `bench hull build --hull mp`")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            obj = json.load(handle)
        hull = FormationEnergyHull.from_json(obj)
    except (HullError, OSError, ValueError, KeyError, TypeError) as error:
        raise HullError(f"shipped hull {path} is damaged: {error}") from error
    if hull.sha256 != expected:
        raise HullError(f"shipped hull {path} is damaged: content hash {hull.sha256} != pinned {expected}")
    return hull


def _check_source(path: Path, spec: SourceFile) -> None:
    if not path.exists():
        raise HullError(
            f"{path} is missing: put {spec.filename} there (see reference/mp/SOURCES.md), or pass its folder with "
            "--reference-dir"
        )
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise HullError(f"{path}: sha256 {digest} does not match the known {spec.filename} ({spec.sha256})")


def read_elemental_references(path: Path) -> dict[str, dict[str, Any]]:
    """Element -> {energy_per_atom, entry_id} from Matbench Discovery's elemental reference entries file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        raw = json.load(handle)
    out = {}
    for symbol, entry in sorted(raw.items()):
        amounts = entry.get("composition") or {}
        if list(amounts) != [symbol]:
            raise HullError(f"{path}: entry {symbol!r} is not an elemental entry (composition {amounts})")
        atoms = float(amounts[symbol])
        # The entries carry no correction (MP2020 corrects no element); 'energy' is the total (uncorrected) energy.
        energy = float(entry["energy"]) + float(entry.get("correction", 0.0))
        out[symbol] = {"energy_per_atom": round(energy / atoms, 8), "entry_id": entry.get("entry_id", "")}
    return out


def lowest_per_formula(rows: Iterable[tuple[str, str, float]], source: str) -> list[tuple[str, str, float]]:
    """(id, reduced formula, lowest value) per reduced formula of (id, formula, formation energy) rows; the first
    of equal values wins."""
    import math

    from pymatgen.core import Composition, Element

    best: dict[str, tuple[str, float]] = {}
    for entry_id, formula, value in rows:
        try:
            composition = Composition(formula)
            unknown = [str(el) for el in composition if not isinstance(el, Element)]
            if unknown or not len(composition):
                raise ValueError(f"unknown element(s) {', '.join(unknown) or '(none given)'}")
            reduced = composition.reduced_formula
        except Exception as error:
            raise HullError(f"{source}: {entry_id}: formula {formula!r} does not parse: {error}") from error
        if not math.isfinite(value):
            raise HullError(f"{source}: {entry_id}: formation energy {value!r} is not a finite number")
        if reduced not in best or value < best[reduced][1]:
            best[reduced] = (entry_id, value)
    return [(entry_id, formula, round(value, 6)) for formula, (entry_id, value) in sorted(best.items())]


def matminer_rows() -> list[tuple[int, str, float]]:
    """(row, formula, formation energy) of Matbench's ``mp_e_form`` through matminer's download (needs network)."""
    from matminer.datasets import load_dataset

    frame = load_dataset("matbench_mp_e_form")
    return [(i + 2, s.composition.formula.replace(" ", ""), float(e))
            for i, (s, e) in enumerate(zip(frame["structure"], frame["e_form"]))]


# MP-20's splits that carry MP's DFT formation energies; all are Materials Project entries, many newer than the
# Matbench file, so they complete the hull where the papers' 2023 MP hull has them (measured in
# results/benchmarks/mp_hull_calibration.json: without them DiffCSP's posted set is 0.040 more stable).
MP20_HULL_SPLITS = ("train_partial", "val", "test")


def mp20_rows(data_dir: Path | str | None = None) -> tuple[list[tuple[str, str, float]], dict[str, str]]:
    """(id, reduced formula, DFT formation energy per atom) of MP-20's splits above, and their files' sha256."""
    import pandas as pd

    from harness.datasets import ensure_split_file, get_card, split_status
    from harness.paths import data_dir as resolve

    card, root = get_card("mp20"), resolve(data_dir)
    rows, hashes = [], {}
    for split in MP20_HULL_SPLITS:
        path = ensure_split_file(card, split, root)
        hashes[split] = split_status(card, split, root).sha256
        frame = pd.read_csv(path, usecols=["material_id", "pretty_formula", "formation_energy_per_atom"])
        columns = zip(frame["material_id"], frame["pretty_formula"], frame["formation_energy_per_atom"])
        for line, (mid, formula, value) in enumerate(columns, start=2):
            if not isinstance(formula, str) or value != value:
                raise HullError(f"{path}: row {line}: no formula or formation energy")
            rows.append((f"mp20-{split}:{mid}", formula, float(value)))
    return rows, hashes


def build_mp_hull(
    reference_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    e_form_rows: Iterable[tuple[int, str, float]] | None = None,
    with_mp20: bool = True,
) -> FormationEnergyHull:
    """The MP formation-energy hull from the two source files in ``reference_dir`` (both checked by sha256) and,
    unless ``with_mp20`` is false, MP-20's own DFT formation energies (``MP20_HULL_SPLITS`` under ``data_dir``).

    ``e_form_rows`` (row, formula, formation energy) replaces the formation-energy file, e.g. ``matminer_rows()``;
    the elemental references are always read from ``reference_dir``.
    """
    import pandas as pd

    reference_dir = Path(reference_dir)
    e_form_path, elements_path = reference_dir / E_FORM_FILE.filename, reference_dir / ELEMENTS_FILE.filename
    _check_source(elements_path, ELEMENTS_FILE)
    elements = read_elemental_references(elements_path)
    if e_form_rows is None:
        _check_source(e_form_path, E_FORM_FILE)
        frame = pd.read_csv(e_form_path)
        if list(frame.columns[:2]) != ["formula", "target"]:
            raise HullError(f"{e_form_path}: expected columns formula,target; found {', '.join(frame.columns)}")
        e_form_rows = ((i + 2, str(f), float(t)) for i, (f, t) in enumerate(zip(frame["formula"], frame["target"])))
    tagged = [(f"mp_e_form:row{row}", formula, value) for row, formula, value in e_form_rows]
    mp20_hashes: dict[str, str] = {}
    if with_mp20:
        extra, mp20_hashes = mp20_rows(data_dir)
        tagged += extra
    compounds = lowest_per_formula(tagged, str(e_form_path))
    # Elements are the hull's vertices at 0 by definition of a formation energy; MP's elemental polymorphs above
    # their ground state add nothing.
    entries = [(i, f, e) for i, f, e in compounds if len(_elements_of(f)) > 1]
    entries += [(f"{ELEMENT_PREFIX}{symbol}", symbol, 0.0) for symbol in sorted(elements)]
    unreferenced = sorted({el for _, f, _ in entries for el in _elements_of(f)} - set(elements))
    info = {
        "kind": FORMATION_KIND,
        "release": "Matbench v0.1 mp_e_form (Materials Project, 2018-era release and corrections); "
        "elemental references: MP 2023-02-07 (Matbench Discovery)",
        "convention": CONVENTION,
        "corrections": "none on the sample (CHGNet predicts MP-compatible energies); MP's own on the hull's entries",
        "sources": {
            spec.filename: {"sha256": spec.sha256, "rows": spec.rows} for spec in (E_FORM_FILE, ELEMENTS_FILE)
        },
        "n_formulas": len(compounds),
        "mp20_splits": mp20_hashes,
        "n_formulas_from_mp20": sum(1 for i, _, _ in compounds if i.startswith("mp20-")),
        "elements_in_compounds_without_reference": unreferenced,
    }
    return FormationEnergyHull(
        MP_HULL_NAME,
        "Materials Project formation energies (Matbench mp_e_form, and MP-20's own) + MP 2023-02-07 elemental "
        "references",
        entries,
        elements,
        "",
        info,
    )


def _elements_of(formula: str) -> set[str]:
    from pymatgen.core import Composition

    return {el.symbol for el in Composition(formula)}


def hull_from_json(obj: dict[str, Any]) -> ReferenceHull:
    """A hull JSON of either kind (the dataset's CHGNet hull, or a formation-energy hull)."""
    if obj.get("format") != HULL_FORMAT:
        raise HullError(f"unknown hull format {obj.get('format')!r} (this xtalbench reads {HULL_FORMAT})")
    cls = FormationEnergyHull if obj.get("kind") == FORMATION_KIND else ReferenceHull
    return cls.from_json(obj)


def load_hull(path: str | Path, expected_sha256: str | None = None) -> Hull:
    """A hull file: xtalbench's JSON (``.json``/``.json.gz``) or an MP phase-diagram pickle (``.pkl``/``.pkl.gz``)."""
    path = Path(path)
    if path.name.endswith((".json", ".json.gz")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            hull = hull_from_json(json.load(handle))
        if expected_sha256 is not None and hull.sha256 != expected_sha256.lower():
            raise HullError(f"{path}: hull hash {hull.sha256} does not match the expected {expected_sha256}")
        return hull
    return load_mp_hull(path, expected_sha256)
