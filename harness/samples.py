"""Reading and writing sample sets; every sample either becomes a Structure or an invalid slot with its reason."""

from __future__ import annotations

import io
import math
import warnings
import zipfile
from collections.abc import Iterable, Sequence
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


def _parse(text: str, fmt: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt=fmt)


def _from_texts(texts: Iterable[tuple[str, str]], fmt: str = "cif") -> list[Sample]:
    samples = []
    for index, (where, text) in enumerate(texts):
        try:
            structure = _parse(text, fmt)
        except Exception as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            samples.append(Sample(index, None, f"{where}: does not parse: {first_line}"))
            continue
        samples.append(make_sample(index, structure))
    return samples


def read_csv(path: Path, column: str = "cif") -> list[Sample]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise SampleFileError(f"{path}: cannot read as CSV: {exc}") from exc
    if column not in frame.columns:
        raise SampleFileError(f"{path}: no {column!r} column (columns: {', '.join(map(str, frame.columns))})")
    return _from_texts((f"{path.name} row {i + 2}", t) for i, t in enumerate(frame[column]))


def _extxyz_frames(path: Path) -> list:
    """Every frame of an extxyz file; a gzipped one is decompressed once into memory first (ASE's reader seeks back
    to each frame, and a seek in a gzip stream decompresses from the start: quadratic in the file's length)."""
    import gzip
    import io

    from ase.io import read

    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return read(io.StringIO(handle.read()), index=":", format="extxyz")
    return read(path, index=":", format="extxyz")


def read_extxyz(path: Path) -> list[Sample]:
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = _extxyz_frames(path)
    except Exception as exc:
        raise SampleFileError(f"{path}: cannot read as extxyz: {exc}") from exc
    samples = []
    for index, atoms in enumerate(frames):
        try:
            structure = AseAtomsAdaptor.get_structure(atoms)
        except Exception as exc:
            samples.append(Sample(index, None, f"{path.name} frame {index}: {exc}"))
            continue
        samples.append(make_sample(index, structure))
    return samples


def read_run_samples(path: Path, n_samples: int) -> list[Sample]:
    """A run's own ``samples.extxyz(.gz)`` back in sample order: frames carry their ``sample_index`` (samples that were
    never constructed have no frame and come back as unconstructed slots)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = _extxyz_frames(path)
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


def read_cif_folder(path: Path) -> list[Sample]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif")
    if not files:
        raise SampleFileError(f"{path}: folder holds no .cif files")
    return _from_texts((p.name, p.read_text(errors="replace")) for p in files)


def read_cif_zip(path: Path) -> list[Sample]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise SampleFileError(f"{path}: not a zip file: {exc}") from exc
    with archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith(".cif"))
        if not names:
            raise SampleFileError(f"{path}: zip holds no .cif files")
        return _from_texts((n, archive.read(n).decode("utf-8", errors="replace")) for n in names)


def read_cdvae_pt(path: Path) -> list[Sample]:
    """CDVAE/DiffCSP ``eval_gen.pt``-style dicts of flat tensors (an optional leading batch dimension of 1)."""
    import torch
    from pymatgen.core import Lattice, Structure

    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise SampleFileError(f"{path}: torch.load failed: {exc}") from exc
    need = ("frac_coords", "num_atoms", "atom_types", "lengths", "angles")
    if not isinstance(data, dict) or any(k not in data for k in need):
        have = ", ".join(data) if isinstance(data, dict) else type(data).__name__
        raise SampleFileError(f"{path}: expected a dict with {', '.join(need)} (has: {have})")

    def flat(key, width=None):
        array = np.asarray(data[key].detach().cpu().numpy() if hasattr(data[key], "detach") else data[key])
        if width is None:
            return array.reshape(-1)
        return array.reshape(-1, width)

    frac, num_atoms, types = flat("frac_coords", 3), flat("num_atoms").astype(int), flat("atom_types").astype(int)
    lengths, angles = flat("lengths", 3), flat("angles", 3)
    if types.ndim != 1:
        raise SampleFileError(f"{path}: atom_types must be atomic numbers (got one-hot?)")
    samples, start = [], 0
    for index, count in enumerate(num_atoms):
        stop = start + int(count)
        try:
            lattice = Lattice.from_parameters(*lengths[index], *angles[index])
            structure = Structure(lattice, types[start:stop].tolist(), frac[start:stop])
            samples.append(make_sample(index, structure))
        except Exception as exc:
            samples.append(Sample(index, None, f"{path.name} sample {index}: {exc}"))
        start = stop
    return samples


def read_samples(path: str | Path) -> list[Sample]:
    """Read a sample set: extxyz(.gz), CSV(.gz) with a ``cif`` column, a folder or zip of CIFs, or a CDVAE ``.pt``."""
    path = Path(path)
    if not path.exists():
        raise SampleFileError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_dir():
        return read_cif_folder(path)
    if name.endswith((".csv", ".csv.gz")):
        return read_csv(path)
    if name.endswith((".extxyz", ".xyz", ".extxyz.gz", ".xyz.gz")):  # ASE opens .gz transparently
        return read_extxyz(path)
    if name.endswith(".zip"):
        return read_cif_zip(path)
    if name.endswith((".pt", ".pth")):
        return read_cdvae_pt(path)
    raise SampleFileError(f"{path}: unknown sample format (use .extxyz, .csv/.csv.gz with a 'cif' column, .zip, a folder of .cif, or .pt)")


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
