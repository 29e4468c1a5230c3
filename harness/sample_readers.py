"""One reader per sample format: each turns a file's bytes into entries (position, Structure or None, reason);
``harness.sample_formats`` tells the formats apart and turns entries into Samples."""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.samples import SampleFileError

STRUCTURE_COLUMNS = ("cif", "structure", "LeMatStructs", "cif_string")  # LeMat-GenBench's run_benchmarks.py order

Entry = tuple[str, Any, "str | None"]  # (position, Structure or None, why it is not one)


@dataclass
class Source:
    """A file, or a member of a folder or zip, to read: its bytes are loaded once, when first asked for."""

    label: str  # how positions name it: "s.cif", "cifs/0.cif", "s.zip/a/POSCAR"
    named: str  # how a whole-file error names it (the path a user gave, for the file itself)
    name: str  # its file name, ".gz" removed once decompressed
    load: Callable[[], bytes]
    path: Path | None = None  # the file on disk, if it is one and not compressed
    compressed: bool = False
    _data: bytes | None = None

    def data(self) -> bytes:
        if self._data is None:
            self._data = self.load()
        return self._data

    def text(self) -> str:
        return self.data().decode("utf-8-sig", errors="replace")

    def head(self, size: int = 1 << 16) -> bytes:
        if self.path is not None and self._data is None:
            with open(self.path, "rb") as handle:
                return handle.read(size)
        return self.data()[:size]


def attempt(where: str, build: Callable[..., Any], *args) -> Entry:
    """``build(*args)`` as an entry: a structure, or the reason it could not be made."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return where, build(*args), None
    except Exception as exc:  # one bad entry must not stop the file
        return where, None, why(exc)


def why(exc: BaseException) -> str:
    """An exception as an entry's reason: its message's first line (a KeyError's key named as missing)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError):
        return f"missing key {text}"
    return text.splitlines()[0] if text else type(exc).__name__


def from_atoms(atoms):
    """A Structure from ASE Atoms, which must have a periodic cell (three lattice vectors)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if atoms.cell.rank < 3:
        raise ValueError(f"no periodic cell ({atoms.cell.rank} lattice vectors; a molecule?)")
    return AseAtomsAdaptor.get_structure(atoms)


def _parse_text(text: str, fmt: str):
    from pymatgen.core import Structure

    try:
        return Structure.from_str(text, fmt=fmt)
    except Exception as exc:
        raise ValueError(f"does not parse as {fmt.upper()}: {why(exc)}") from exc


def _from_cell(text: str):
    """A structure from one CSV cell or JSON string: Structure JSON if it starts with '{', else CIF text."""
    text = text.strip()
    if not text:
        raise ValueError("empty")
    if text.startswith("{"):
        return _from_json(json.loads(text))
    return _parse_text(text, "cif")


def _from_json(value):
    from pymatgen.core import Structure

    if isinstance(value, str):
        return _from_cell(value)
    if isinstance(value, dict) and "lattice" in value and "sites" in value:
        return Structure.from_dict(value)
    if isinstance(value, dict) and isinstance(value.get("structure"), (dict, str)):
        return _from_json(value["structure"])
    if isinstance(value, dict):
        kind = value.get("@class") or "keys " + ", ".join(map(str, list(value)[:5]))
        raise ValueError(f"not a pymatgen Structure dict ({kind})")
    raise ValueError(f"not a structure but a JSON {type(value).__name__}")


# --- one reader per format ---------------------------------------------------------------------------------------

def _read_extxyz(source: Source) -> list[Entry]:
    from ase.io import read

    text = source.text()
    try:
        frames = read(io.StringIO(text), index=":", format="extxyz")
    except Exception:  # some frame is broken: read them one at a time to find it
        return _extxyz_frame_by_frame(source, text)
    return [attempt(f"{source.label} frame {i}", from_atoms, atoms) for i, atoms in enumerate(frames)]


def _extxyz_frame_by_frame(source: Source, text: str) -> list[Entry]:
    """Frames start at a line holding only an atom count; a frame with fewer atom lines than it says ends where
    the next count line starts, so that one broken frame does not shift those after it."""
    from ase.io import read

    lines = text.splitlines()
    counts = [atom_count(line) for line in lines]
    start = _next_count(counts, 0, len(lines))
    if start is None:
        raise SampleFileError(f"{source.named}: cannot read as extxyz: no line holds an atom count")
    entries = []
    while start is not None:
        stop = min(start + 2 + counts[start], len(lines))
        stop = _next_count(counts, start + 2, stop) or stop
        chunk = "\n".join(lines[start:stop]) + "\n"
        where = f"{source.label} frame {len(entries)} (line {start + 1})"
        entries.append(attempt(where, lambda c: from_atoms(read(io.StringIO(c), format="extxyz")), chunk))
        start = _next_count(counts, stop, len(lines))
    return entries


def atom_count(line: str) -> int | None:
    token = line.strip()
    return int(token) if token.isdigit() else None


def _next_count(counts: list[int | None], start: int, stop: int) -> int | None:
    return next((i for i in range(start, stop) if counts[i] is not None), None)


def _cif_blocks(text: str) -> list[tuple[str | None, str]]:
    """(data_ header, block text) per data block; lines inside a ';' text field never start a block."""
    blocks: list[tuple[str | None, str]] = []
    header, lines, in_text_field = None, [], False

    def close():
        if header is not None or any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines):
            blocks.append((header, "".join(lines)))

    for line in text.splitlines(keepends=True):
        if line.startswith(";"):
            in_text_field = not in_text_field
        elif not in_text_field and re.match(r"\s*data_", line, re.I):
            close()
            header, lines = line.split()[0], []
        lines.append(line)
    close()
    return blocks


def _read_cif(source: Source) -> list[Entry]:
    blocks = _cif_blocks(source.text())
    if not blocks:
        raise SampleFileError(f"{source.named}: holds no CIF data block")
    if len(blocks) == 1:
        return [attempt(source.label, _parse_text, blocks[0][1], "cif")]
    return [attempt(f"{source.label} block {i} ({header or 'before the first data_'})", _parse_text, text, "cif")
            for i, (header, text) in enumerate(blocks)]


def _read_poscar(source: Source) -> list[Entry]:
    return [attempt(source.label, _parse_text, source.text(), "poscar")]


def _read_json(source: Source) -> list[Entry]:
    try:
        data = json.loads(source.text())
    except ValueError as exc:
        raise SampleFileError(f"{source.named}: not JSON: {exc}") from exc
    if isinstance(data, dict) and ({"lattice", "sites"} <= data.keys() or isinstance(data.get("structure"), dict)):
        items = [(source.label, data)]  # one structure, not a dict of them
    elif isinstance(data, dict):
        items = [(f"{source.label} entry {key!r}", value) for key, value in data.items()]
    elif isinstance(data, list):
        items = [(f"{source.label} entry {i}", value) for i, value in enumerate(data)]
    else:
        raise SampleFileError(f"{source.named}: JSON holds a {type(data).__name__}, not a list or dict of structures")
    return [attempt(where, _from_json, value) for where, value in items]


def _read_csv(source: Source) -> list[Entry]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(source.data()), dtype=str, keep_default_na=False)
    except Exception as exc:
        raise SampleFileError(f"{source.named}: cannot read as CSV: {exc}") from exc
    column = next((c for c in STRUCTURE_COLUMNS if c in frame.columns), None)
    if column is None:
        raise SampleFileError(f"{source.named}: no structure column (one of {', '.join(STRUCTURE_COLUMNS)}; "
                              f"columns: {', '.join(map(str, frame.columns))})")
    # rows as CSV lines count them when every cell is one line (the header is line 1)
    return [attempt(f"{source.label} row {i + 2}", _from_cell, text) for i, text in enumerate(frame[column])]


def _read_traj(source: Source) -> list[Entry]:
    from ase.io.trajectory import TrajectoryReader

    try:
        reader = TrajectoryReader(str(source.path) if source.path else io.BytesIO(source.data()))
        count = len(reader)
    except Exception as exc:
        raise SampleFileError(f"{source.named}: cannot read as an ASE trajectory: {why(exc)}") from exc
    try:
        return [attempt(f"{source.label} frame {i}", lambda k: from_atoms(reader[k]), i) for i in range(count)]
    finally:
        reader.close()


def _read_db(source: Source) -> list[Entry]:
    if source.path is not None:
        return _db_entries(source, source.path)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:  # sqlite reads files only
        copy = Path(folder) / "samples.db"
        copy.write_bytes(source.data())
        return _db_entries(source, copy)


def _db_entries(source: Source, path: Path) -> list[Entry]:
    """Checked read-only first: ASE's connect() writes its tables into an SQLite file that lacks them."""
    import sqlite3
    from contextlib import closing

    from ase.db import connect

    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise SampleFileError(f"{source.named}: not an SQLite database: {exc}") from exc
    if "systems" not in tables:
        raise SampleFileError(f"{source.named}: an SQLite file but not an ASE database (no 'systems' table)")
    try:
        rows = list(connect(path, type="db").select(sort="id"))
    except Exception as exc:
        raise SampleFileError(f"{source.named}: cannot read as an ASE database: {why(exc)}") from exc
    return [attempt(f"{source.label} row id={row.id}", lambda r: from_atoms(r.toatoms()), row) for row in rows]


def _read_cdvae_pt(source: Source) -> list[Entry]:
    """CDVAE/DiffCSP ``eval_gen.pt``-style dicts of flat tensors (an optional leading batch dimension of 1)."""
    import numpy as np
    import torch

    try:
        data = torch.load(source.path or io.BytesIO(source.data()), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise SampleFileError(f"{source.named}: torch.load failed: {exc}") from exc
    need = ("frac_coords", "num_atoms", "atom_types", "lengths", "angles")
    if not isinstance(data, dict) or any(k not in data for k in need):
        have = ", ".join(data) if isinstance(data, dict) else type(data).__name__
        raise SampleFileError(f"{source.named}: expected a dict with {', '.join(need)} (has: {have})")

    def flat(key, width=None):
        array = np.asarray(data[key].detach().cpu().numpy() if hasattr(data[key], "detach") else data[key])
        return array.reshape(-1) if width is None else array.reshape(-1, width)

    frac, num_atoms, types = flat("frac_coords", 3), flat("num_atoms").astype(int), flat("atom_types").astype(int)
    lengths, angles = flat("lengths", 3), flat("angles", 3)
    entries, start = [], 0
    for index, count in enumerate(num_atoms):
        stop = start + int(count)
        entries.append(attempt(f"{source.label} entry {index}", _cdvae_structure, lengths[index], angles[index],
                                types[start:stop], frac[start:stop]))
        start = stop
    return entries


def _cdvae_structure(lengths, angles, types, frac):
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.from_parameters(*lengths, *angles), types.tolist(), frac)


READERS: dict[str, Callable[[Source], list[Entry]]] = {
    "extxyz": _read_extxyz, "cif": _read_cif, "poscar": _read_poscar, "pymatgen-json": _read_json, "csv": _read_csv,
    "ase-traj": _read_traj, "ase-db": _read_db, "cdvae-pt": _read_cdvae_pt,
}
