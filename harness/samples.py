"""Reading and writing sample sets; every sample either becomes a Structure or an invalid slot with its reason."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.evaluation_types import Sample
from harness.protocol import MIN_VOLUME


class SampleFileError(ValueError):
    """A sample file cannot be read at all (wrong format, missing column); single bad rows never raise this."""


def construction_problem(structure) -> str | None:
    """Why ``structure`` cannot count as a constructed crystal (docs/protocol.md, "Sample set"), or ``None``."""
    from pymatgen.core import Structure
    from pymatgen.core.periodic_table import DummySpecies, Element

    if not isinstance(structure, Structure):
        return f"not a pymatgen Structure but {type(structure).__name__}"
    if len(structure) == 0:
        return "no atoms"
    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    if not np.all(np.isfinite(matrix)):
        return "lattice has NaN/inf"
    if np.any(np.asarray(structure.lattice.abc) <= 0):
        return "lattice length <= 0"
    if not np.all(np.isfinite(structure.frac_coords)):
        return "coordinates have NaN/inf"
    volume = abs(float(np.linalg.det(matrix)))
    if not math.isfinite(volume) or volume < MIN_VOLUME:
        return f"volume {volume:.3g} Å^3 < {MIN_VOLUME}"
    if not structure.is_ordered:
        return "partially occupied site (generated crystals are ordered)"
    for species in structure.composition:
        element = getattr(species, "element", species)
        if isinstance(species, DummySpecies) or not isinstance(element, Element):
            return f"unknown element {species}"
    return None


def make_sample(index: int, structure, reason: str | None = None) -> Sample:
    """A Sample for ``structure``, turned into an invalid slot with its reason if it fails construction checks."""
    if structure is None:
        return Sample(index, None, reason or "generator returned no structure")
    try:
        problem = construction_problem(structure)
    except Exception as exc:  # a malformed object must not stop the run
        problem = f"construction check raised {type(exc).__name__}: {exc}"
    if problem:
        return Sample(index, None, problem)
    return Sample(index, structure, None)


def _extxyz_frames(path: Path, text: str | None = None) -> list:
    """Every frame of an extxyz file (or of ``text``, its content read from elsewhere); a gzipped one is decompressed
    once into memory first (ASE's reader seeks back to each frame, and a seek in a gzip stream decompresses from the
    start: quadratic in the file's length)."""
    import gzip
    import io

    from ase.io import read

    if text is not None:
        return read(io.StringIO(text), index=":", format="extxyz")
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return read(io.StringIO(handle.read()), index=":", format="extxyz")
    return read(path, index=":", format="extxyz")


def read_run_samples(path: Path, n_samples: int, text: str | None = None) -> list[Sample]:
    """A run's own ``samples.extxyz(.gz)`` back in sample order: frames carry their ``sample_index`` (samples that were
    never constructed have no frame and come back as unconstructed slots). ``text``: the file's extxyz content where
    it is read from elsewhere (a retired file, from git), ``path`` then only names it."""
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = _extxyz_frames(path, text)
    except Exception as exc:
        raise SampleFileError(f"{path}: cannot read as extxyz: {exc}") from exc
    slots: list[Sample] = [Sample(i, None, "not constructed (no frame in the run's samples file)")
                           for i in range(n_samples)]
    for position, atoms in enumerate(frames):
        index = atoms.info.get("sample_index")
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < n_samples:
            raise SampleFileError(f"{path}: frame {position} has no valid sample_index (got {index!r})")
        slots[int(index)] = make_sample(int(index), AseAtomsAdaptor.get_structure(atoms))
    return slots


def structures_to_extxyz(samples: Sequence[Sample]) -> str:
    """The constructed samples as extended XYZ text, each frame tagged with its sample index."""
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for sample in samples:
        if sample.structure is None:
            continue
        atoms = AseAtomsAdaptor.get_atoms(sample.structure)
        atoms.info = {"sample_index": sample.index}
        frames.append(atoms)
    buffer = io.StringIO()
    if frames:
        write(buffer, frames, format="extxyz")
    return buffer.getvalue()
