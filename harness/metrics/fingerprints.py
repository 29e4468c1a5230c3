"""CDVAE's structure and composition fingerprints, computed through an Executor and scaled with the fixed scaler.

Structure: mean over sites of matminer ``CrystalNNFingerprint.from_preset("ops")`` (61 values, unscaled).
Composition: matminer ``ElementProperty.from_preset("magpie")`` (132 values) standardised with CDVAE's fixed
means/stds (``harness/data/magpie_scaler_cdvae.json``), NaN → 0. Missing elemental data is left NaN (no
imputation, as matminer 0.7 did; matminer ≥ 0.9 imputes by default, which would move the distances).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from harness.io import atomic_write
from harness.parallel import Executor, SerialExecutor

__all__ = [
    "Fingerprints",
    "N_COMP_FEATURES",
    "N_STRUCT_FEATURES",
    "composition_fingerprint",
    "fingerprint_pair",
    "fingerprint_structures",
    "fingerprint_structures_resumable",
    "featurizer_versions",
    "magpie_scaler",
    "read_chunk",
    "scale_composition",
    "structure_fingerprint",
    "structure_fingerprint_impl",
    "structure_fingerprint_matminer",
]

N_STRUCT_FEATURES = 61
N_COMP_FEATURES = 132
SCALER_RESOURCE = "magpie_scaler_cdvae.json"
IMPL_ENV = "XTALBENCH_FINGERPRINTS"


def featurizer_versions() -> dict[str, str]:
    """Versions of the packages whose code decides the fingerprints (part of the cache key)."""
    versions = {}
    for package in ("matminer", "pymatgen", "numpy", "scipy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return versions


@lru_cache(maxsize=1)
def magpie_scaler() -> tuple[np.ndarray, np.ndarray, str]:
    """(means, stds, source) of CDVAE's fixed Magpie scaler, read from package data."""
    text = resources.files("harness").joinpath("data", SCALER_RESOURCE).read_text(encoding="utf-8")
    payload = json.loads(text)
    means = np.asarray(payload["means"], dtype=float)
    stds = np.asarray(payload["stds"], dtype=float)
    if means.shape != (N_COMP_FEATURES,) or stds.shape != (N_COMP_FEATURES,):
        raise ValueError(f"{SCALER_RESOURCE}: expected {N_COMP_FEATURES} means and stds")
    return means, stds, payload.get("source", "")


def scale_composition(raw: np.ndarray) -> np.ndarray:
    """(x − μ)/σ with CDVAE's means/stds; NaN → 0 (CDVAE's StandardScaler ``replace_nan_token``)."""
    means, stds, _ = magpie_scaler()
    scaled = (np.asarray(raw, dtype=float) - means) / stds
    return np.where(np.isnan(scaled), 0.0, scaled)


@lru_cache(maxsize=1)
def _featurizers():
    from matminer.featurizers.composition.composite import ElementProperty
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops"), ElementProperty.from_preset("magpie", impute_nan=False)


def structure_fingerprint(structure) -> np.ndarray:
    """Mean over sites of the CrystalNN "ops" site fingerprint, by ``crystalnn_fast`` (matminer's vectors to ~1e-15,
    checked on every row of the test splits by ``benchmarks/fingerprint_exactness.py``); ``XTALBENCH_FINGERPRINTS=
    matminer`` computes it with matminer's featurizer itself."""
    if structure_fingerprint_impl() == "matminer":
        return structure_fingerprint_matminer(structure)
    from harness.metrics.crystalnn_fast import structure_fingerprint_fast

    return structure_fingerprint_fast(structure)


def structure_fingerprint_impl() -> str:
    """Which code computes structure fingerprints in this process: "crystalnn_fast" (default) or "matminer"."""
    choice = os.environ.get(IMPL_ENV, "crystalnn_fast").strip().lower() or "crystalnn_fast"
    if choice not in ("crystalnn_fast", "matminer"):
        raise ValueError(f"{IMPL_ENV}={choice!r}: choose 'crystalnn_fast' or 'matminer'")
    return choice


def structure_fingerprint_matminer(structure) -> np.ndarray:
    """Mean over sites of matminer's CrystalNN "ops" site fingerprint: the reference the fast path is held to."""
    crystal_nn, _ = _featurizers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sites = [crystal_nn.featurize(structure, i) for i in range(len(structure))]
    return np.asarray(sites, dtype=float).mean(axis=0)


def composition_fingerprint(composition) -> np.ndarray:
    """Unscaled Magpie ElementProperty features of a composition (or a structure's composition)."""
    from pymatgen.core import Composition

    _, magpie = _featurizers()
    composition = Composition(getattr(composition, "composition", composition))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(magpie.featurize(composition), dtype=float)


def fingerprint_pair(structure) -> tuple[np.ndarray, np.ndarray]:
    """(structure fingerprint, unscaled composition fingerprint): the unit of work sent to an executor."""
    return structure_fingerprint(structure), composition_fingerprint(structure.composition)


@dataclass(frozen=True)
class Fingerprints:
    """Fingerprints of a list of structures; rows where ``errors[i]`` is set hold NaN and are excluded."""

    struct: np.ndarray  # (n, 61)
    comp: np.ndarray  # (n, 132), scaled
    errors: tuple[str | None, ...]
    seconds: tuple[float, ...]

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)

    def __len__(self) -> int:
        return len(self.errors)


def fingerprint_structures(
    structures,
    *,
    executor: Executor | None = None,
    timeout_s: float | None = 120.0,
    desc: str = "fingerprints",
) -> Fingerprints:
    """Fingerprint every structure (``None`` entries are recorded as not constructed) through ``executor``."""
    executor = executor or SerialExecutor(progress=False)
    present = [i for i, s in enumerate(structures) if s is not None]
    outcomes = executor.map(
        fingerprint_pair, [structures[i] for i in present], timeout_s=timeout_s, desc=desc
    )
    n = len(structures)
    struct = np.full((n, N_STRUCT_FEATURES), np.nan)
    comp_raw = np.full((n, N_COMP_FEATURES), np.nan)
    errors: list[str | None] = ["not constructed"] * n
    seconds = [0.0] * n
    for i, outcome in zip(present, outcomes):
        seconds[i] = outcome.seconds
        if not outcome.ok:
            errors[i] = outcome.error
            continue
        s_fp, c_fp = outcome.value
        if np.shape(s_fp) != (N_STRUCT_FEATURES,) or np.shape(c_fp) != (N_COMP_FEATURES,):
            errors[i] = f"unexpected fingerprint shape {np.shape(s_fp)}, {np.shape(c_fp)}"
            continue
        if not np.all(np.isfinite(s_fp)):
            errors[i] = "non-finite structure fingerprint"
            continue
        struct[i], comp_raw[i], errors[i] = s_fp, c_fp, None
    comp = scale_composition(comp_raw)
    comp[[e is not None for e in errors]] = np.nan
    return Fingerprints(struct, comp, tuple(errors), tuple(seconds))


def _chunk_key(structures) -> str:
    digest = hashlib.sha256(json.dumps(featurizer_versions(), sort_keys=True).encode())
    for structure in structures:
        text = "none" if structure is None else json.dumps(structure.as_dict(), sort_keys=True, default=_plain)
        digest.update(text.encode())
    return digest.hexdigest()[:20]


def _plain(value):
    """numpy scalars and arrays in a structure's properties (an extxyz frame's ``sample_index`` read back by ASE)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def read_chunk(path) -> Fingerprints | None:
    """One chunk file ``fingerprint_structures_resumable`` saved, or None when it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            return Fingerprints(
                saved["struct"], saved["comp"],
                tuple(json.loads(str(saved["errors"]))), tuple(saved["seconds"].tolist()),
            )
    except (OSError, ValueError, KeyError):
        return None


def fingerprint_structures_resumable(
    structures,
    store,
    *,
    chunk: int = 500,
    executor: Executor | None = None,
    timeout_s: float | None = 120.0,
    desc: str = "fingerprints",
) -> Fingerprints:
    """``fingerprint_structures`` in chunks of ``chunk``, each saved under ``store`` as it finishes.

    A chunk's file is named by a hash of its structures and the featurizer versions, so a killed evaluation
    resumes where it stopped and a changed sample set or featurizer recomputes.
    """
    if not structures:
        return fingerprint_structures([], executor=executor, timeout_s=timeout_s, desc=desc)
    store = Path(store)
    parts: list[Fingerprints] = []
    n_chunks = (len(structures) + chunk - 1) // chunk
    for number, start in enumerate(range(0, len(structures), chunk), 1):
        part_structures = structures[start : start + chunk]
        path = store / f"chunk-{start}-{_chunk_key(part_structures)}.npz"
        part = read_chunk(path) if path.exists() else None  # a damaged chunk reads as None and is recomputed
        if part is None or len(part) != len(part_structures):
            label = f"{desc} {number}/{n_chunks}" if n_chunks > 1 else desc
            part = fingerprint_structures(part_structures, executor=executor, timeout_s=timeout_s, desc=label)

            def write(tmp, part=part):
                with open(tmp, "wb") as handle:
                    np.savez(handle, struct=part.struct, comp=part.comp, errors=np.array(json.dumps(part.errors)),
                             seconds=np.array(part.seconds))

            atomic_write(path, write)
        parts.append(part)
    return Fingerprints(
        np.concatenate([p.struct for p in parts]),
        np.concatenate([p.comp for p in parts]),
        tuple(e for p in parts for e in p.errors),
        tuple(s for p in parts for s in p.seconds),
    )
