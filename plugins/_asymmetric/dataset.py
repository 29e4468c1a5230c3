"""A split converted to the asymmetric representation, cached on disk, and packed into padded arrays for models."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np

from plugins._asymmetric.representation import (
    DEFAULT_TOLERANCES,
    N_AXES,
    AsymmetricCrystal,
    RepresentationError,
    encode,
)

# Bump when the encoding changes: cached conversions carry it in their file name.
CODE_VERSION = "1"


@dataclass(frozen=True)
class ConvertedSplit:
    """Every structure of a split in the asymmetric representation (``None`` where encoding failed)."""

    dataset: str
    split: str
    split_sha256: str
    tolerances: tuple[float, ...]
    crystals: list = field(repr=False)  # list[AsymmetricCrystal | None], in split order
    failures: dict = field(default_factory=dict)  # index -> reason

    def valid(self) -> list[AsymmetricCrystal]:
        return [c for c in self.crystals if c is not None]


def cache_key(split_sha256: str, tolerances: tuple[float, ...]) -> str:
    """The cache file stem: split hash + tolerances + code version."""
    from harness.io import sha256_text

    tol = "-".join(f"{t:g}" for t in tolerances)
    return f"{sha256_text(split_sha256)[:24]}-tol{tol}-v{CODE_VERSION}"


def convert_split(split, tolerances: tuple[float, ...] = DEFAULT_TOLERANCES, use_cache: bool = True) -> ConvertedSplit:
    """Encode every structure of a harness ``Split``; reads/writes ``cache_dir('asymmetric')``."""
    from harness import paths
    from harness.io import atomic_write

    path = paths.cache_dir("asymmetric") / f"{cache_key(split.sha256, tolerances)}.pkl"
    if use_cache and path.exists():
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except Exception:
            path.unlink(missing_ok=True)  # a torn cache file is rebuilt, never trusted
    crystals, failures = [], {}
    for index, structure in enumerate(split.structures):
        try:
            crystals.append(encode(structure, tolerances))
        except RepresentationError as exc:
            crystals.append(None)
            failures[index] = str(exc)
    converted = ConvertedSplit(split.dataset, split.name, split.sha256, tuple(tolerances), crystals, failures)
    if use_cache:
        atomic_write(path, lambda p: p.write_bytes(pickle.dumps(converted, protocol=pickle.HIGHEST_PROTOCOL)))
    return converted


@dataclass(frozen=True)
class PackedCrystals:
    """Padded arrays for ``B`` crystals with at most ``N`` representatives (``mask`` marks real ones)."""

    space_group: np.ndarray  # (B,) int
    k: np.ndarray  # (B, 6)
    atomic_numbers: np.ndarray  # (B, N) int, 0 = padding
    frac_coords: np.ndarray  # (B, N, 3) in [0, 1)
    site_ops: np.ndarray  # (B, N, 15) int: index of the operation on each axis
    mask: np.ndarray  # (B, N) bool


def pack(crystals: list[AsymmetricCrystal]) -> PackedCrystals:
    """Pad a list of crystals into arrays; the site-symmetry one-hot becomes one operation index per axis."""
    n_max = max(len(c.representatives) for c in crystals)
    b = len(crystals)
    sg = np.array([c.space_group for c in crystals], dtype=np.int64)
    k = np.stack([np.asarray(c.k, dtype=np.float32) for c in crystals])
    z = np.zeros((b, n_max), dtype=np.int64)
    x = np.zeros((b, n_max, 3), dtype=np.float32)
    ops = np.zeros((b, n_max, N_AXES), dtype=np.int64)
    mask = np.zeros((b, n_max), dtype=bool)
    for i, crystal in enumerate(crystals):
        for j, rep in enumerate(crystal.representatives):
            z[i, j] = rep.atomic_number
            x[i, j] = rep.frac_coords
            ops[i, j] = np.argmax(rep.site_symmetry, axis=1)
            mask[i, j] = True
    return PackedCrystals(sg, k, z, x, ops, mask)
