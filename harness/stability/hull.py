"""Reference convex hulls: energy above hull of a composition at a given energy per atom.

:class:`Hull` is what scoring needs of any hull. Two sources: the dataset's own structures scored by CHGNet plus
CHGNet-relaxed elemental references (built by ``harness.stability.reference``, stored as a JSON entry list), or a
user-supplied Materials Project phase diagram (Matbench Discovery's 2023-02-07 ``PatchedPhaseDiagram`` pickle),
verified by its sha256.
"""

from __future__ import annotations

import gzip
import json
import pickle
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from harness.io import sha256_file, sha256_text

__all__ = [
    "HULL_FORMAT",
    "EntryPoolHull",
    "Hull",
    "HullError",
    "KNOWN_MP_HULL_SHA256",
    "MPHull",
    "mp2020_corrected_energy_per_atom",
    "ReferenceHull",
    "entries_hash",
    "load_mp_hull",
]

HULL_FORMAT = 1

# sha256 of Matbench Discovery's ``2023-02-07-ppd-mp.pkl.gz`` releases. Empty: the file could not be fetched
# where this was written, so no value is claimed; pass ``expected_sha256`` (``--hull-sha256``) to pin one.
KNOWN_MP_HULL_SHA256: dict[str, str] = {}


class HullError(RuntimeError):
    """A hull file is missing, of an unknown format, or fails its hash check."""


# Above this many elements a chemical system's hull energy comes from a linear program, not a phase diagram. Both
# give the same lower envelope (to 1e-14 eV/atom on SymmBFN's MP-20 samples, benchmarks/hull_paths.py), but a
# phase diagram is a convex hull in (elements - 1) dimensions over every entry of the system and its subsystems:
# on the MP hull it took 0.02 s at 4 elements, 0.5-5 s at 7-8 and over a minute at 9 (1,277 entries), once per
# chemical system, and generated samples rarely share one; the linear program takes about 0.01 s at any size. Up to
# 4 elements a diagram stays cheap and is cached per system (many samples share binaries and ternaries).
DIAGRAM_MAX_ELEMENTS = 4


def lowest_energy_per_atom(entries: Sequence[Any], composition) -> float:
    """The lower convex envelope of ``entries`` (energy per atom over composition) at ``composition``.

    The same quantity as ``PhaseDiagram.get_hull_energy_per_atom``: min sum_j x_j e_j over x_j >= 0 with
    sum_j x_j c_j = c (c_j, c: atomic fractions over the system's elements; sum_j x_j = 1 follows). A linear
    program (HiGHS) whose cost grows with the number of entries, not combinatorially with the dimension.
    """
    import numpy as np
    from scipy.optimize import linprog

    elements = sorted({el.symbol for el in composition})
    column = {el: i for i, el in enumerate(elements)}
    a = np.zeros((len(elements), len(entries)))
    cost = np.empty(len(entries))
    for j, entry in enumerate(entries):
        amounts = entry.composition.get_el_amt_dict()
        total = sum(amounts.values())
        for el, amount in amounts.items():
            a[column[el], j] = amount / total
        cost[j] = entry.energy_per_atom
    target = np.array([composition.get_atomic_fraction(el) for el in elements])
    result = linprog(cost, A_eq=a, b_eq=target, bounds=(0, None), method="highs")
    if result.status != 0:
        raise ValueError(f"hull energy linear program failed: {result.message}")
    return float(result.fun)


def _chemsys(elements: Iterable[str]) -> str:
    return "-".join(sorted(set(elements)))


def entries_hash(entries: Sequence[Sequence[Any]], elements: dict[str, dict]) -> str:
    """Content hash of a hull: its entries (id, formula, energy per atom) and elemental references."""
    payload = {"entries": [list(e) for e in entries], "elements": elements}
    return sha256_text(json.dumps(payload, sort_keys=True, separators=(",", ":")))


class Hull(ABC):
    """What scoring asks of a reference hull: where a sample's energy lies against it, and what a record names.

    Every hull carries ``name``, ``source``, ``sha256`` (the content hash a record names), ``elements`` (those with
    a reference) and ``info`` (settings and provenance, copied into :meth:`describe`).
    """

    name: str
    source: str
    sha256: str
    elements: Collection[str]
    info: dict[str, Any]

    @property
    @abstractmethod
    def size(self) -> int:
        """The number of entries."""

    @abstractmethod
    def corrected_energy(self, structure, energy_per_atom: float) -> float:
        """The energy per atom of ``structure`` to pass to :meth:`e_above_hull`, in this hull's convention."""

    @abstractmethod
    def e_above_hull(self, composition, energy_per_atom: float) -> tuple[float | None, str | None]:
        """(E_hull in eV/atom, None), or (None, reason) when the composition cannot be placed on this hull."""

    def missing_elements(self, composition) -> list[str]:
        """Elements of ``composition`` that have no elemental reference in this hull."""
        return sorted(el.symbol for el in composition if el.symbol not in self.elements)

    def prepare(self, compositions: Iterable[Any], *, progress: bool | None = None) -> None:  # noqa: B027 - optional
        """Make ready, in one batch, what the E_hull of ``compositions`` needs; nothing for most hulls."""

    def describe(self) -> dict[str, Any]:
        """What a record says of this hull: its name, source, hash, size and settings."""
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "size": self.size,
            "n_elements": len(self.elements),
            **self.info,
        }


class EntryPoolHull(Hull):
    """A hull whose energy at a composition is the lower envelope of the entries of its chemical system.

    Subclasses give the entries (``_pool``) and a ``_diagrams`` dict; phase diagrams are built lazily per chemical
    system and cached there.
    """

    _diagrams: dict[str, Any]

    @abstractmethod
    def _pool(self, elements: Sequence[str]) -> list:
        """The ``PDEntry`` of the chemical system of ``elements``, at the energies this hull uses."""

    def _diagram(self, elements: Sequence[str]):
        from pymatgen.analysis.phase_diagram import PhaseDiagram

        key = _chemsys(elements)
        if key not in self._diagrams:
            self._diagrams[key] = PhaseDiagram(self._pool(elements))
        return self._diagrams[key]

    def hull_energy_per_atom(self, composition) -> float:
        """The hull's energy per atom at ``composition``: a phase diagram of its chemical system up to
        ``DIAGRAM_MAX_ELEMENTS`` elements, the equivalent linear program above (see ``lowest_energy_per_atom``)."""
        elements = [el.symbol for el in composition]
        if len(elements) > DIAGRAM_MAX_ELEMENTS:
            return lowest_energy_per_atom(self._pool(elements), composition)
        return float(self._diagram(elements).get_hull_energy_per_atom(composition))

    def e_above_hull(self, composition, energy_per_atom: float) -> tuple[float | None, str | None]:
        missing = self.missing_elements(composition)
        if missing:
            return None, f"no reference for element(s) {', '.join(missing)}"
        try:
            return float(energy_per_atom - self.hull_energy_per_atom(composition)), None
        except Exception as exc:  # a degenerate sub-hull must not stop a run
            return None, f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class ReferenceHull(EntryPoolHull):
    """A hull from an entry list; phase diagrams are built lazily per chemical system and cached."""

    name: str
    source: str
    entries: list[tuple[str, str, float]]  # (id, formula, energy per atom); elements included as entries
    elements: dict[str, dict]  # element -> {"energy_per_atom", "prototype", ...}
    sha256: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    _by_chemsys: dict[str, list] = field(default_factory=dict, init=False, repr=False)
    _diagrams: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from pymatgen.analysis.phase_diagram import PDEntry
        from pymatgen.core import Composition

        if not self.sha256:
            self.sha256 = entries_hash(self.entries, self.elements)
        for entry_id, formula, energy in self.entries:
            composition = Composition(formula)
            entry = PDEntry(composition, energy * composition.num_atoms, name=formula, attribute=entry_id)
            self._by_chemsys.setdefault(_chemsys(el.symbol for el in composition), []).append(entry)

    @property
    def size(self) -> int:
        return len(self.entries)

    def corrected_energy(self, structure, energy_per_atom: float) -> float:
        """The energy to compare with this hull: raw CHGNet, as the hull's own entries (no corrections)."""
        return energy_per_atom

    def chemsys_entries(self, elements: Iterable[str]) -> list:
        """The ``PDEntry`` of every entry whose elements are a subset of ``elements`` (``attribute`` = entry id)."""
        members = sorted(set(elements))
        pool = []
        if 2 ** len(members) > 4 * len(self._by_chemsys):  # many elements: test each stored system instead
            allowed = set(members)
            for key, entries in self._by_chemsys.items():
                if allowed.issuperset(key.split("-")):
                    pool.extend(entries)
            return pool
        for size in range(1, len(members) + 1):
            for subset in combinations(members, size):
                pool.extend(self._by_chemsys.get("-".join(subset), ()))
        return pool

    def _pool(self, elements: Sequence[str]) -> list:
        """The entries of the chemical system of ``elements`` (with the energies this hull uses)."""
        return self.chemsys_entries(elements)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": HULL_FORMAT,
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "info": self.info,
            "elements": self.elements,
            "entries": [list(e) for e in self.entries],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, verify: bool = True) -> ReferenceHull:
        if obj.get("format") != HULL_FORMAT:
            raise HullError(f"unknown hull format {obj.get('format')!r} (this xtalbench reads {HULL_FORMAT})")
        entries = [(str(i), str(f), float(e)) for i, f, e in obj["entries"]]
        hull = cls(obj["name"], obj["source"], entries, obj["elements"], "", obj.get("info", {}))
        if verify and obj.get("sha256") and hull.sha256 != obj["sha256"]:
            raise HullError(f"hull {obj['name']!r}: content hash {hull.sha256} != recorded {obj['sha256']}")
        return hull


@dataclass
class MPHull(Hull):
    """A Materials Project (Patched)PhaseDiagram of MP2020-corrected DFT entries; CHGNet energies are placed on it
    as they are (FlowMM's convention; CHGNet learnt MP's corrected energies, see docs/protocol.md)."""

    name: str
    source: str
    diagram: Any
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(getattr(self.diagram, "all_entries", ()))

    @property
    def elements(self) -> set[str]:
        return {el.symbol for el in self.diagram.elements}

    def corrected_energy(self, structure, energy_per_atom: float) -> float:
        """The raw CHGNet energy: MP2020 on top of it puts MP-20's oxides 0.4 eV/atom below their DFT hull
        (``results/benchmarks/mp_hull_calibration.json``, variant ``mp_refs_mp2020``)."""
        return energy_per_atom

    def e_above_hull(self, composition, energy_per_atom: float) -> tuple[float | None, str | None]:
        from pymatgen.analysis.phase_diagram import PDEntry

        missing = self.missing_elements(composition)
        if missing:
            return None, f"no reference for element(s) {', '.join(missing)}"
        try:
            entry = PDEntry(composition, energy_per_atom * composition.num_atoms)
            _, e_hull = self.diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
            return float(e_hull), None
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]


def mp2020_corrected_energy_per_atom(structure, energy_per_atom: float) -> float:
    """An energy per atom with MP2020 corrections, taking GGA+U (MP's U values) for oxides/fluorides of U elements.

    Never applied to CHGNet's energies (they carry MP's corrections already; the calibration benchmark measures that
    variant); applied to those of relaxers trained on uncorrected energies (SevenNet-0). Raises ``ValueError`` when the compatibility scheme rejects the entry.
    """
    from pymatgen.entries.compatibility import MaterialsProject2020Compatibility
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    compat = MaterialsProject2020Compatibility(check_potcar=False)
    symbols = {el.symbol for el in structure.composition}
    anion = "O" if "O" in symbols else "F" if "F" in symbols else None
    u_values = compat.u_settings.get(anion, {}) if anion else {}
    hubbards = {el: u_values[el] for el in symbols if el in u_values}
    params = {"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards}
    entry = ComputedStructureEntry(structure, energy_per_atom * len(structure), parameters=params)
    processed = compat.process_entries([entry], clean=True, inplace=False)
    if not processed:
        raise ValueError("MP2020 compatibility rejected the entry")
    return processed[0].energy / len(structure)


def load_mp_hull(path: str | Path, expected_sha256: str | None = None) -> MPHull:
    """Load a pickled (gzipped) MP phase diagram after checking its sha256 against ``expected_sha256``.

    Without ``expected_sha256`` the file must match one of :data:`KNOWN_MP_HULL_SHA256`; otherwise the error
    message gives the file's hash so the user can pin it deliberately.
    """
    path = Path(path)
    if not path.exists():
        raise HullError(f"hull file {path} does not exist")
    digest = sha256_file(path)
    known = {v: k for k, v in KNOWN_MP_HULL_SHA256.items()}
    if expected_sha256 is not None:
        if digest != expected_sha256.lower():
            raise HullError(f"{path}: sha256 {digest} does not match the expected {expected_sha256}")
    elif digest not in known:
        raise HullError(
            f"{path}: sha256 {digest} is not a known Materials Project hull release; "
            f"if you trust this file, pass its hash explicitly (--hull-sha256 {digest})"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        diagram = pickle.load(handle)  # noqa: S301 - a file the user vouched for by its hash
    if not hasattr(diagram, "get_decomp_and_e_above_hull"):
        raise HullError(f"{path}: unpickled a {type(diagram).__name__}, not a pymatgen phase diagram")
    info = {
        "corrections": "none on the sample (raw CHGNet energy); MP2020 on the diagram's own entries",
        "release": known.get(digest, "user-pinned"),
    }
    return MPHull(path.name, f"user-supplied Materials Project phase diagram: {path}", diagram, digest, info)
