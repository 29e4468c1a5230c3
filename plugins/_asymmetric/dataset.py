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


def _encode_or_reason(item: tuple) -> tuple[AsymmetricCrystal | None, str | None]:
    """(crystal, None), or (None, why) where the structure has no asymmetric-unit encoding."""
    structure, tolerances = item
    try:
        return encode(structure, tolerances), None
    except RepresentationError as exc:
        return None, str(exc)


def convert_split(split, tolerances: tuple[float, ...] = DEFAULT_TOLERANCES, use_cache: bool = True,
                  workers: int = 1) -> ConvertedSplit:
    """Encode every structure of a harness ``Split``; reads/writes ``cache_dir('asymmetric')``.

    ``workers`` > 1 encodes in that many spawned processes, with the same result (MP-20's 13,637 training structures
    take ~40 ms each on one core here: minutes that a GPU run's time box cannot spare)."""
    from harness import paths
    from harness.io import atomic_write

    path = paths.cache_dir("asymmetric") / f"{cache_key(split.sha256, tolerances)}.pkl"
    if use_cache and path.exists():
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except Exception:
            path.unlink(missing_ok=True)  # a torn cache file is rebuilt, never trusted
    items = [(structure, tuple(tolerances)) for structure in split.structures]
    if workers > 1 and len(items) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_encode_or_reason, items, chunksize=max(1, len(items) // (4 * workers))))
    else:
        results = [_encode_or_reason(item) for item in items]
    crystals = [crystal for crystal, _ in results]
    failures = {index: reason for index, (_, reason) in enumerate(results) if reason is not None}
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
    prop: np.ndarray | None = None  # (B,) float32: each crystal's conditioning label (conditional training only)


def pack(crystals: list[AsymmetricCrystal], props: np.ndarray | None = None) -> PackedCrystals:
    """Pad a list of crystals into arrays; the site-symmetry one-hot becomes one operation index per axis.
    ``props``: one conditioning label per crystal, carried along as ``prop``."""
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
    if props is not None:
        props = np.asarray(props, dtype=np.float32)
        if props.shape != (b,):
            raise ValueError(f"{len(props)} labels for {b} crystals")
    return PackedCrystals(sg, k, z, x, ops, mask, props)
