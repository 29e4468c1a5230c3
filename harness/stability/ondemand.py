"""Reference entries relaxed on demand, so that both sides of E_hull are relaxed CHGNet energies (issue #4).

The offline hull (``reference.py``) scores the dataset's structures statically, at their DFT geometry, while
samples are relaxed; comparing the two favours samples. Before a sample's E_hull is taken, the dataset entries of
its chemical system (every one by default; with a margin, those within ``margin`` eV/atom of their own chemical
system's static hull) are relaxed with the samples' ``RelaxSettings`` and cached on disk, one file per entry; the
phase diagram then takes min(static, relaxed) for them. With a margin, entries farther above keep their static
energy, an upper bound on their relaxed one. Elemental references are relaxed already
(``reference.elemental_references``). The static hull stays the base artifact: its sha256 is the one a record names.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import paths
from harness.cards import DatasetCard
from harness.io import atomic_write_json, sha256_text
from harness.stability.hull import EntryPoolHull, ReferenceHull, _chemsys
from harness.stability.relax import DEFAULT_SETTINGS, RelaxResult, RelaxSettings, relax_batched
from harness.stability.shipped import shipped_relaxed

__all__ = [
    "REFERENCE_RELAX_MARGIN",
    "RelaxedReferenceCache",
    "RelaxedReferenceHull",
    "dataset_structure_source",
    "relaxed_on_demand",
]

# eV/atom above the static hull of an entry's chemical system within which the entry is relaxed; None relaxes every
# entry of a needed chemical system. None because a margin does not hold on Perov-5: CHGNet relaxation gains of its
# (non-MP, GPAW-relaxed) structures reach 3.5 eV/atom (median 0.11), and 55 of the 176 entries on the fully relaxed
# hulls of 50 test systems started more than 0.1 eV/atom (up to 2.0) above the static hull; with a 0.1 margin, 44
# of 100 sample E_hull moved (up to 0.58 eV/atom). See results/benchmarks/hull_consistency_perov5.json.
REFERENCE_RELAX_MARGIN: float | None = None
RECIPE_VERSION = "1"
CACHE_SUBDIR = "relaxed-references"
ELEMENT_PREFIX = "element:"  # ids of the elemental references, relaxed when the hull was built

# Entry ids -> pymatgen Structures, for those ids it has.
StructureSource = Callable[[Sequence[str]], Mapping[str, Any]]


def settings_key(settings: RelaxSettings) -> str:
    """Short hash of what fixes a reference relaxation: the settings, the chgnet package and this recipe."""
    import chgnet

    payload = {"settings": settings.as_dict(), "chgnet": chgnet.__version__, "recipe": RECIPE_VERSION}
    return sha256_text(json.dumps(payload, sort_keys=True))[:12]


class RelaxedReferenceCache:
    """One JSON per relaxed entry in ``<cache>/hulls/relaxed-references/<hull sha256[:16]>-<settings key>/``."""

    def __init__(self, hull_sha256: str, settings: RelaxSettings, root: Path | None = None):
        self.hull_sha256 = hull_sha256
        self.settings = settings
        self.settings_key = settings_key(settings)
        base = Path(root) if root is not None else paths.cache_dir("hulls") / CACHE_SUBDIR
        self.directory = base / f"{hull_sha256[:16]}-{self.settings_key}"

    def path(self, entry_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", entry_id)[:80]
        return self.directory / f"{safe}-{sha256_text(entry_id)[:8]}.json"

    def load(self, entry_id: str) -> dict[str, Any] | None:
        """The cached (else shipped) record of ``entry_id``, or None when absent or not this hull's."""
        try:
            record = json.loads(self.path(entry_id).read_text())
        except (OSError, ValueError):
            record = shipped_relaxed(self.hull_sha256, self.settings_key).get(entry_id)
        if record is None or record.get("entry_id") != entry_id or record.get("hull_sha256") != self.hull_sha256:
            return None
        return record

    def save(self, entry_id: str, record: dict[str, Any]) -> dict[str, Any]:
        full = {"entry_id": entry_id, "hull_sha256": self.hull_sha256, "settings": self.settings.as_dict(), **record}
        atomic_write_json(self.path(entry_id), full)
        return full


def dataset_structure_source(hull: ReferenceHull, data_dir: str | Path | None = None,
                             card: DatasetCard | None = None) -> StructureSource | None:
    """Structures of entries ``<split>:<material id>`` from the dataset splits the hull was built from.

    None when the hull names no dataset; a split that is absent offline or whose sha256 differs from the one the
    hull records gives no structures (its entries keep their static energy). ``card``: the card of that dataset
    where the caller holds it (else the name the hull records is resolved when a split is first needed).
    """
    dataset, split_hashes = hull.info.get("dataset"), hull.info.get("splits")
    if not dataset or not isinstance(split_hashes, dict):
        return None
    source_dataset = card if card is not None and card.name == dataset else dataset
    loaded: dict[str, dict[str, Any] | None] = {}

    def split_index(name: str) -> dict[str, Any] | None:
        if name not in loaded:
            loaded[name] = None
            if name in split_hashes:
                from harness.datasets import load_split

                try:
                    split = load_split(source_dataset, name, data_dir=data_dir, download=False)
                except Exception:  # noqa: BLE001 - a missing split leaves its entries static
                    return None
                if split.sha256 == split_hashes[name]:
                    loaded[name] = dict(zip(split.material_ids, split.structures))
        return loaded[name]

    def source(entry_ids: Sequence[str]) -> dict[str, Any]:
        out = {}
        for entry_id in entry_ids:
            split, _, material_id = entry_id.partition(":")
            index = split_index(split)
            if index is not None and material_id in index:
                out[entry_id] = index[material_id]
        return out

    return source


@dataclass
class RelaxedReferenceHull(EntryPoolHull):
    """A :class:`ReferenceHull` whose entries near each needed chemical system's hull are relaxed on demand."""

    base: ReferenceHull
    structures: StructureSource | None
    settings: RelaxSettings = DEFAULT_SETTINGS
    margin: float | None = REFERENCE_RELAX_MARGIN
    progress: bool = True
    cache: RelaxedReferenceCache | None = None
    relaxed: dict[str, float] = field(default_factory=dict, init=False)  # entry id -> min(static, relaxed)
    counts: Counter = field(default_factory=Counter, init=False)
    _considered: set[str] = field(default_factory=set, init=False, repr=False)
    _prepared: set[str] = field(default_factory=set, init=False, repr=False)
    _diagrams: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = RelaxedReferenceCache(self.base.sha256, self.settings)

    # The base hull's identity: a record names the static artifact and, beside it, how it was relaxed.
    @property
    def name(self) -> str:
        return self.base.name

    @property
    def source(self) -> str:
        return self.base.source

    @property
    def sha256(self) -> str:
        return self.base.sha256

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def elements(self) -> dict[str, dict]:
        return self.base.elements

    @property
    def info(self) -> dict[str, Any]:
        return self.base.info

    def corrected_energy(self, structure, energy_per_atom: float) -> float:
        return self.base.corrected_energy(structure, energy_per_atom)

    def treatment(self) -> str:
        scope = (
            "every entry of each chemical system a sample needs"
            if self.margin is None
            else f"entries within {self.margin} eV/atom of the static hull of their chemical system (for each "
            "chemical system a sample needs)"
        )
        text = (
            f"scored statically at the DFT geometry; {scope} relaxed on demand with the samples' relax settings "
            "(cached per entry) and min(static, relaxed) used"
        )
        if self.margin is not None:
            text += "; entries farther above keep their static energy, an upper bound on their relaxed energy"
        return text

    def describe(self) -> dict[str, Any]:
        out = self.base.describe()
        out["treatment"] = {**(out.get("treatment") or {}), "dataset_structures": self.treatment()}
        energies = sorted((k, round(v, 6)) for k, v in self.relaxed.items())
        out["reference_relaxation"] = {
            "mode": "relaxed on demand",
            "margin_ev_per_atom": self.margin,
            "recipe_version": RECIPE_VERSION,
            "settings": self.settings.as_dict(),
            "settings_key": settings_key(self.settings),
            "cache_dir": self.cache.directory.name,  # under the user cache; never a local path in a record
            "structures_available": self.structures is not None,
            "n_chemical_systems": len(self._prepared),
            "n_entries_in_systems": self.counts["in_systems"],
            "n_entries_within_margin": self.counts["within_margin"],
            "n_relaxed_now": self.counts["relaxed_now"],
            "n_reused_from_cache": self.counts["reused"],
            "n_failed": self.counts["failed"],
            "n_not_converged": self.counts["not_converged"],
            "n_without_structure": self.counts["without_structure"],
            "n_lowered": self.counts["lowered"],
            "relaxed_energies_sha256": sha256_text(json.dumps(energies)),
        }
        return out

    def _within_margin(self, entries: Iterable[Any]) -> list:
        """The dataset entries to relax, each judged in its own chemical system's static diagram.

        Judging an entry in its own system makes the choice independent of which sample asked first (the static
        hull of a larger system, restricted to this face, is the same).
        """
        chosen = []
        for entry in entries:
            if self.margin is None:
                chosen.append(entry)
                continue
            diagram = self.base._diagram([el.symbol for el in entry.composition])
            if diagram.get_e_above_hull(entry) <= self.margin + 1e-9:
                chosen.append(entry)
        return chosen

    def _use(self, entry, record: dict[str, Any]) -> None:
        energy = record.get("energy_per_atom")
        if record.get("error") or energy is None:
            self.counts["failed"] += 1
            return
        if not record.get("converged", True):
            self.counts["not_converged"] += 1
        static = entry.energy_per_atom
        if energy < static:
            self.counts["lowered"] += 1
        self.relaxed[entry.attribute] = min(static, float(energy))

    def prepare(self, compositions: Iterable[Any], *, progress: bool | None = None) -> None:
        """Relax in one batched call (or read from the cache) every entry the E_hull of ``compositions`` needs."""
        systems = set()
        for composition in compositions:
            if composition is None or self.base.missing_elements(composition):
                continue
            key = _chemsys(el.symbol for el in composition)
            if key not in self._prepared:
                systems.add(key)
        if not systems:
            return
        candidates: dict[str, Any] = {}
        for key in sorted(systems):
            for entry in self.base.chemsys_entries(key.split("-")):
                entry_id = entry.attribute
                if not entry_id.startswith(ELEMENT_PREFIX) and entry_id not in self._considered:
                    candidates.setdefault(entry_id, entry)
        needed = self._within_margin(candidates[k] for k in sorted(candidates))
        self.counts["in_systems"] += len(candidates)
        self.counts["within_margin"] += len(needed)
        todo = []
        for entry in needed:
            entry_id = entry.attribute
            record = self.cache.load(entry_id)
            if record is None:
                todo.append(entry)
            else:
                self.counts["reused"] += 1
                self._use(entry, record)
        structures = self.structures([e.attribute for e in todo]) if (todo and self.structures) else {}
        jobs = [e for e in todo if e.attribute in structures]
        self.counts["without_structure"] += len(todo) - len(jobs)
        by_id = {e.attribute: e for e in jobs}

        def save(entry_id: str, result: RelaxResult) -> None:
            entry = by_id[entry_id]
            record = {
                "formula": entry.composition.formula,
                "static_energy_per_atom": round(entry.energy_per_atom, 6),
                "energy_per_atom": result.energy_per_atom,
                "converged": result.converged,
                "steps": result.steps,
                "error": result.error,
                "seconds": round(result.seconds, 3),
            }
            self._use(entry, self.cache.save(entry_id, record))
            self.counts["relaxed_now"] += 1

        if jobs:
            relax_batched(
                [structures[e.attribute] for e in jobs],
                self.settings,
                keys=[e.attribute for e in jobs],
                on_result=save,
                progress=self.progress if progress is None else progress,
                desc="relaxing references (CHGNet)",
            )
        self._considered.update(candidates)
        self._prepared.update(systems)
        self._diagrams.clear()  # a cached diagram may predate entries resolved just now

    def _pool(self, elements: Sequence[str]) -> list:
        """The base hull's entries of this chemical system, each at min(static, relaxed) where relaxed."""
        from pymatgen.analysis.phase_diagram import PDEntry

        pool = []
        for entry in self.base.chemsys_entries(elements):
            energy = self.relaxed.get(entry.attribute)
            if energy is not None:
                n = entry.composition.num_atoms
                entry = PDEntry(entry.composition, energy * n, name=entry.name, attribute=entry.attribute)
            pool.append(entry)
        return pool

    def e_above_hull(self, composition, energy_per_atom: float) -> tuple[float | None, str | None]:
        """(E_hull in eV/atom, None) against the relaxed references, or (None, reason); prepares lazily."""
        self.prepare([composition])  # skips compositions without element references
        return super().e_above_hull(composition, energy_per_atom)


def relaxed_on_demand(
    hull: ReferenceHull,
    *,
    settings: RelaxSettings = DEFAULT_SETTINGS,
    margin: float | None = REFERENCE_RELAX_MARGIN,
    data_dir: str | Path | None = None,
    structures: StructureSource | Mapping[str, Any] | None = None,
    cache_root: Path | None = None,
    progress: bool = True,
    card: DatasetCard | None = None,
) -> RelaxedReferenceHull:
    """Wrap ``hull`` so that its entries are relaxed on demand; structures default to the hull's dataset splits
    (``card``: that dataset's card, where the caller holds it)."""
    if isinstance(structures, Mapping):
        mapping = structures

        def structures(ids: Sequence[str]) -> dict[str, Any]:
            return {i: mapping[i] for i in ids if i in mapping}

    elif structures is None:
        structures = dataset_structure_source(hull, data_dir, card)
    cache = RelaxedReferenceCache(hull.sha256, settings, cache_root)
    return RelaxedReferenceHull(hull, structures, settings, margin, progress, cache)
