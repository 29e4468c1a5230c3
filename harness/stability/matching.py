"""Uniqueness and novelty with pymatgen's ``StructureMatcher`` (defaults), compared only within a reduced formula."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness import paths
from harness.io import atomic_write_json, sha256_text

__all__ = ["formula_index", "novel_flags", "train_formula_index", "unique_flags"]


def _matcher():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher()  # defaults: ltol 0.2, stol 0.3, angle_tol 5, primitive cell, scaled volumes


def formula_index(structures: Sequence[Any]) -> dict[str, list[int]]:
    """Reduced formula -> indices of ``structures`` with it (``None`` entries skipped)."""
    index: dict[str, list[int]] = {}
    for i, structure in enumerate(structures):
        if structure is not None:
            index.setdefault(structure.composition.reduced_formula, []).append(i)
    return index


def train_formula_index(train) -> dict[str, list[int]]:
    """The formula index of a training split, cached on disk by the split's sha256."""
    key = sha256_text(f"{train.dataset}|{train.name}|{train.sha256}")[:32]
    path = paths.cache_dir("novelty") / f"{train.dataset}-{key}.json"
    if path.exists():
        try:
            index = json.loads(path.read_text())
            if sum(len(v) for v in index.values()) == len(train.structures):
                return index
        except (OSError, ValueError):
            pass
    index = formula_index(train.structures)
    atomic_write_json(path, index)
    return index


def unique_flags(structures: Sequence[Any]) -> list[bool]:
    """True where no earlier structure (same reduced formula) matches; ``None`` entries are not unique."""
    matcher = _matcher()
    flags: list[bool] = []
    seen: dict[str, list[Any]] = {}
    for structure in structures:
        if structure is None:
            flags.append(False)
            continue
        earlier = seen.setdefault(structure.composition.reduced_formula, [])
        flags.append(not any(matcher.fit(other, structure) for other in earlier))
        earlier.append(structure)
    return flags


def novel_flags(
    structures: Sequence[Any], train, *, index: dict[str, list[int]] | None = None, progress: bool = False
) -> list[bool]:
    """True where no training structure with the same reduced formula matches; ``None`` entries are not novel."""
    from tqdm.auto import tqdm

    matcher = _matcher()
    index = train_formula_index(train) if index is None else index
    flags: list[bool] = []
    for structure in tqdm(structures, desc="novelty", unit="struct", disable=not progress, mininterval=1):
        if structure is None:
            flags.append(False)
            continue
        candidates = index.get(structure.composition.reduced_formula, ())
        flags.append(not any(matcher.fit(train.structures[j], structure) for j in candidates))
    return flags
