"""Build the offline reference hull of a dataset: every structure of its splits scored by CHGNet, plus elements.

Treatment (recorded in the hull's ``info``):
- Dataset structures are DFT-relaxed already; they are scored **statically** (one CHGNet call each) here. Relaxing
  all of them costs ~100x more (tens of FIRE steps of a forces+stress call each, against one energy call), so at
  evaluation time ``harness.stability.ondemand`` relaxes the entries of the chemical systems the samples need (same
  settings as samples, cached per entry) and takes min(static, relaxed): a reference's own CHGNet relaxation gain
  (up to eV/atom on Perov-5) would otherwise bias samples towards "stable". This file stays the base artifact.
- Elemental references do not exist in the datasets, so they are built: for each element, candidate crystals
  (ASE's reference state where ``ase.build.bulk`` knows it, plus fcc, bcc and hcp at the covalent-radius bond
  length) are **relaxed** with the same CHGNet, FIRE and cell filter, and the lowest energy per atom is kept.
  They start far from any minimum (ASE's experimental or guessed lattices), unlike the DFT-relaxed compounds.
- Gaseous elements (H, N, O, F, Cl, and Br, I, whose ASE states are molecular) also get a diatomic molecule in a
  10 Å box, relaxed with the cell fixed; like every candidate, it is kept only if it is the lowest.
- No MP2020-style corrections: both sides are raw CHGNet energies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import paths
from harness.cards import DatasetCard
from harness.io import atomic_write_json, sha256_text
from harness.stability.hull import ReferenceHull
from harness.stability.relax import DEFAULT_SETTINGS, RelaxSettings, relax_batched, score_static
from harness.stability.shipped import load_shipped_hull

__all__ = [
    "HULL_SPLITS",
    "build_dataset_hull",
    "cached_hull_path",
    "element_candidates",
    "hull_splits",
    "load_or_build_dataset_hull",
]

RECIPE_VERSION = "1"
# Splits whose structures form the default hull, per dataset (what exists offline here).
HULL_SPLITS = {
    "perov5": ("train", "val", "test"),
    "mp20": ("train_partial", "val", "test"),
    "carbon24": ("val", "test"),
}
DIATOMIC = ("H", "N", "O", "F", "Cl", "Br", "I")
ELEMENT_MAX_STEPS = 300
CHUNK = 1000


def hull_splits(card: DatasetCard, data_dir: str | Path | None = None) -> tuple[str, ...]:
    """The splits that make up the hull of ``card``'s dataset: the table above, else every split present on disk."""
    if card.name in HULL_SPLITS:
        return HULL_SPLITS[card.name]
    from harness.datasets import split_path

    return tuple(s for s in card.files if split_path(card, s, paths.data_dir(data_dir)) is not None)


def element_candidates(symbol: str) -> list[tuple[str, Any, bool]]:
    """(prototype name, pymatgen Structure, relax the cell?) candidates for one element's reference."""
    from ase import Atoms
    from ase.build import bulk
    from ase.data import atomic_numbers, covalent_radii
    from pymatgen.io.ase import AseAtomsAdaptor

    bond = 2.0 * float(covalent_radii[atomic_numbers[symbol]])
    builders = [
        ("ase-reference", lambda: bulk(symbol)),
        ("fcc", lambda: bulk(symbol, "fcc", a=bond * 2**0.5)),
        ("bcc", lambda: bulk(symbol, "bcc", a=bond * 2 / 3**0.5)),
        ("hcp", lambda: bulk(symbol, "hcp", a=bond, c=bond * (8 / 3) ** 0.5)),
    ]
    out = []
    for name, build in builders:
        try:
            out.append((name, AseAtomsAdaptor.get_structure(build()), True))
        except Exception:  # noqa: S112 - ASE has no reference state for this element
            continue
    if symbol in DIATOMIC:
        box = Atoms(symbol * 2, positions=[(0, 0, 0), (0, 0, bond)], cell=[10.0, 10.0, 10.0], pbc=True)
        out.append(("diatomic-in-10A-box", AseAtomsAdaptor.get_structure(box), False))
    return out


def elemental_references(
    symbols: Sequence[str], settings: RelaxSettings, progress: bool = True
) -> dict[str, dict]:
    """Relax every candidate of every element; keep the lowest energy per atom (converged or not, recorded)."""
    jobs = [
        (symbol, name, structure, cell)
        for symbol in sorted(set(symbols))
        for name, structure, cell in element_candidates(symbol)
    ]
    element_settings = replace(settings, max_steps=ELEMENT_MAX_STEPS)
    results = relax_batched(
        [j[2] for j in jobs],
        element_settings,
        relax_cell=[j[3] for j in jobs],
        progress=progress,
        desc="elemental references",
    )
    best: dict[str, dict] = {}
    for (symbol, name, _, _), result in zip(jobs, results):
        if result.energy_per_atom is None:
            continue
        if symbol not in best or result.energy_per_atom < best[symbol]["energy_per_atom"]:
            best[symbol] = {
                "energy_per_atom": round(result.energy_per_atom, 6),
                "prototype": name,
                "converged": result.converged,
                "steps": result.steps,
            }
    return best


def _cache_key(dataset: str, split_hashes: dict[str, str], settings: RelaxSettings) -> str:
    import chgnet

    payload = {
        "dataset": dataset,
        "splits": split_hashes,
        "model": settings.model,
        "chgnet": chgnet.__version__,
        "recipe": RECIPE_VERSION,
        "element_fmax": settings.fmax,
        "element_steps": ELEMENT_MAX_STEPS,
        "optimizer": settings.optimizer,
        "cell_filter": settings.cell_filter,
    }
    return sha256_text(json.dumps(payload, sort_keys=True))[:16]


def cached_hull_path(dataset: str, key: str) -> Path:
    return paths.cache_dir("hulls") / f"{dataset}-{key}.json"


def _score_split_chunked(
    split, settings: RelaxSettings, partial_dir: Path, progress: bool
) -> list[float | str]:
    """Score a split in chunks of CHUNK structures, each saved as it finishes so a killed build resumes."""
    from tqdm.auto import tqdm

    energies: list[float | str] = []
    n = len(split.structures)
    with tqdm(
        total=n,
        desc=f"scoring {split.dataset}/{split.name}",
        unit="struct",
        disable=not progress,
        mininterval=1,
    ) as bar:
        for start in range(0, n, CHUNK):
            chunk_file = partial_dir / f"{split.name}-{split.sha256[:12]}-{start}.json"
            if chunk_file.exists():
                chunk = json.loads(chunk_file.read_text())
            else:
                chunk = score_static(
                    split.structures[start : start + CHUNK],
                    model_name=settings.model,
                    batch_size=settings.batch_size,
                )
                atomic_write_json(chunk_file, chunk)
            energies.extend(chunk)
            bar.update(len(chunk))
    return energies


def build_dataset_hull(
    card: DatasetCard,
    *,
    data_dir: str | Path | None = None,
    settings: RelaxSettings = DEFAULT_SETTINGS,
    progress: bool = True,
    splits: Sequence[str] | None = None,
) -> ReferenceHull:
    """Score every structure of the dataset's hull splits, add elemental references, cache and return the hull."""
    import chgnet

    from harness.datasets import load_split

    start = time.perf_counter()
    dataset = card.name
    splits = tuple(splits or hull_splits(card, data_dir))
    loaded = [load_split(card, s, data_dir=data_dir) for s in splits]
    split_hashes = {s.name: s.sha256 for s in loaded}
    key = _cache_key(dataset, split_hashes, settings)
    partial_dir = paths.cache_dir("hulls") / "partial" / f"{dataset}-{key}"
    entries: list[tuple[str, str, float]] = []
    failures: list[dict[str, str]] = []
    elements: set[str] = set()
    for split in loaded:
        energies = _score_split_chunked(split, settings, partial_dir, progress)
        for material_id, structure, energy in zip(split.material_ids, split.structures, energies):
            formula = structure.composition.formula
            elements.update(el.symbol for el in structure.composition)
            if isinstance(energy, str):
                failures.append({"id": material_id, "split": split.name, "error": energy})
            else:
                entries.append((f"{split.name}:{material_id}", formula, round(float(energy), 6)))
    scored_seconds = time.perf_counter() - start
    element_refs = elemental_references(sorted(elements), settings, progress)
    for symbol, ref in sorted(element_refs.items()):
        entries.append((f"element:{symbol}:{ref['prototype']}", symbol, ref["energy_per_atom"]))
    info = {
        "dataset": dataset,
        "splits": split_hashes,
        "cache_key": key,
        "chgnet_version": chgnet.__version__,
        "model": settings.model,
        "corrections": "none (raw CHGNet energies on both sides)",
        "treatment": {
            "dataset_structures": "static (DFT-relaxed structures scored as given)",
            "elements": f"relaxed ({settings.optimizer}, {settings.cell_filter}, fmax {settings.fmax} "
            f"eV/A, <= {ELEMENT_MAX_STEPS} steps); lowest of ASE reference state, fcc, bcc, "
            "hcp, and for H, N, O, F, Cl, Br, I a diatomic molecule in a 10 A box",
            "recipe_version": RECIPE_VERSION,
        },
        "elements_without_reference": sorted(elements - set(element_refs)),
        "scoring_failures": failures,
        "n_structures": len(entries) - len(element_refs),
        "seconds_scoring": round(scored_seconds, 1),
        "seconds_total": round(time.perf_counter() - start, 1),
    }
    hull = ReferenceHull(
        f"{dataset}-chgnet-{settings.model}-{key}",
        f"dataset {dataset}: {'+'.join(splits)}",
        entries,
        element_refs,
        "",
        info,
    )
    atomic_write_json(cached_hull_path(dataset, key), hull.to_json())
    return hull


def load_or_build_dataset_hull(
    card: DatasetCard,
    *,
    data_dir: str | Path | None = None,
    settings: RelaxSettings = DEFAULT_SETTINGS,
    progress: bool = True,
    build: bool = True,
) -> ReferenceHull:
    """The cached hull of ``card``'s dataset for these settings, built (minutes to tens of minutes) when absent."""
    from harness.datasets import load_split

    dataset = card.name
    splits = hull_splits(card, data_dir)
    hashes = {s: load_split(card, s, data_dir=data_dir).sha256 for s in splits}
    key = _cache_key(dataset, hashes, settings)
    path = cached_hull_path(dataset, key)
    if path.exists():
        return ReferenceHull.from_json(json.loads(path.read_text()))
    shipped = load_shipped_hull(dataset, key)
    if shipped is not None:  # the same splits, settings and chgnet: the scoring is not redone
        atomic_write_json(path, shipped.to_json())
        return shipped
    if not build:
        raise FileNotFoundError(
            f"no cached hull for {dataset} at {path}; run `bench hull build --dataset {dataset}`"
        )
    return build_dataset_hull(card, data_dir=data_dir, settings=settings, progress=progress, splits=splits)
