"""Sample files in the formats generators write, told apart by name or by content: one Sample per entry; a bad
entry is an invalid Sample whose reason starts with its position, a file that cannot be read at all a SampleFileError."""

from __future__ import annotations

import gzip
import io
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.evaluation_types import Sample
from harness.sample_readers import (
    READERS,
    STRUCTURE_COLUMNS,
    Entry,
    Source,
    atom_count,
    attempt,
    from_atoms,
    why,
)
from harness.samples import SampleFileError, make_sample

# Each format by name, as records (sampling.source_format) and `bench evaluate --help` name it; "+gzip" is appended
# when the file was gzipped, and a file none of these fits is read by ASE ("ase:<its format>") or pymatgen.
FORMATS = {
    "extxyz": ".extxyz, .xyz (MatterGen's): a sample per frame",
    "cif": ".cif, .mcif: a sample per data block",
    "poscar": "POSCAR*, CONTCAR*, *.vasp, *.poscar: a sample per file",
    "pymatgen-json": ".json: a list or dict of pymatgen Structure dicts (monty's as_dict),\n"
                     "or of dicts holding one as 'structure' (ComputedStructureEntry)",
    "csv": ".csv: a sample per row of the first column named cif, structure,\n"
           "LeMatStructs or cif_string (LeMat-GenBench's), CIF or Structure JSON",
    "ase-traj": ".traj (ASE trajectory): a sample per frame",
    "ase-db": ".db (ASE database): a sample per row",
    "cdvae-pt": ".pt, .pth: CDVAE/DiffCSP eval_gen.pt tensors",
    "zip": ".zip of files in these formats (subfolders too)",
    "folder": "a folder of files in these formats (subfolders too)",
}
_BY_SUFFIX = {".extxyz": "extxyz", ".xyz": "extxyz", ".cif": "cif", ".mcif": "cif", ".vasp": "poscar",
              ".poscar": "poscar", ".json": "pymatgen-json", ".csv": "csv", ".traj": "ase-traj", ".db": "ase-db",
              ".pt": "cdvae-pt", ".pth": "cdvae-pt", ".zip": "zip"}
_GZIP_MAGIC, _ZIP_MAGIC, _SQLITE_MAGIC, _ULM_MAGIC = b"\x1f\x8b", b"PK\x03\x04", b"SQLite format 3\x00", b"- of Ulm"
# VASP writes these beside POSCAR and CONTCAR, and several begin like a POSCAR: in a folder or zip, never a sample.
_VASP_FILES = ("AECCAR", "CHG", "DOSCAR", "EIGENVAL", "ELFCAR", "IBZKPT", "INCAR", "KPOINTS", "LOCPOT", "OSZICAR",
               "OUTCAR", "PARCHG", "PCDAT", "POTCAR", "PROCAR", "VASPRUN", "WAVECAR", "XDATCAR")
# A position as the readers write it: "<file> row|frame|block|entry <id>", or a member "<container>/<file>".
_POSITION = re.compile(r"^(?:[^:]+? (?:row|frame|block|entry) [^:]+|[^\s:/]+/[^:]+): ")


@dataclass(frozen=True)
class SampleFile:
    """What a sample file held: its samples in order, its format, and for a folder or zip the files read per format."""

    samples: list[Sample]
    format: str
    members: dict[str, int] = field(default_factory=dict)  # "unread": files in no known format


def read_sample_file(path: str | Path) -> SampleFile:
    """Read a sample set in any format of ``FORMATS`` (gzipped or not), or one ASE or pymatgen can read."""
    path = Path(path)
    if not path.exists():
        raise SampleFileError(f"{path}: no such file or folder")
    if path.is_dir():
        files = folder_members(path)
        label = path.resolve().name
        entries, members = _read_members(f"{path}", [_file_source(p, f"{label}/{n}") for n, p in files])
        members["unread"] = sum(1 for p in path.rglob("*") if p.is_file()) - len(files)
        fmt, members = "folder", {k: v for k, v in members.items() if v}
        source = None
    else:
        source = _decompressed(_file_source(path, path.name, named=str(path)))
        fmt, entries, members = _read_file(source, path)
    samples = _samples(entries)
    if not samples:
        raise SampleFileError(f"{path}: holds no samples ({fmt})")
    return SampleFile(samples, fmt + ("+gzip" if source is not None and source.compressed else ""), members)


def _read_file(source: Source, path: Path) -> tuple[str, list[Entry], dict[str, int]]:
    fmt, members = _format_of(source), {}
    if fmt == "zip":
        entries, members = _read_zip(source)
    elif fmt is not None:
        entries = READERS[fmt](source)
    else:
        entries, fmt = _read_with_ase_or_pymatgen(source, path)
    return fmt, entries, members


def read_samples(path: str | Path) -> list[Sample]:
    """Read a sample set in any format :data:`FORMATS` names, or one ASE or pymatgen reads."""
    return read_sample_file(path).samples


def folder_members(path: Path) -> list[tuple[str, Path]]:
    """The files of a folder that are read as samples, as (path relative to it, path), in that name order."""
    files = []
    for file in path.rglob("*"):
        relative = file.relative_to(path).as_posix()
        if file.is_file() and not _hidden(relative) and _member_format(_file_source(file, relative)):
            files.append((relative, file))
    return sorted(files)


def unlocated(reason: str) -> str:
    """A reason without the position a reader put in front of it, so that equal reasons count together."""
    return _POSITION.sub("", reason, count=1)


def format_suffixes() -> tuple[str, ...]:
    """The file-name endings that name a format (".csv", ".csv.gz", ...), longest first."""
    suffixes = [s + gz for s in _BY_SUFFIX for gz in (".gz", "")]
    return tuple(sorted(suffixes, key=len, reverse=True))


# --- sources and telling formats apart ---------------------------------------------------------------------------

def _file_source(path: Path, label: str, named: str | None = None) -> Source:
    return Source(label, named or label, path.name, path.read_bytes, path)


def _decompressed(source: Source) -> Source:
    if not source.head(2).startswith(_GZIP_MAGIC):
        return source
    try:
        data = gzip.decompress(source.data())
    except (OSError, EOFError) as exc:
        raise SampleFileError(f"{source.named}: not a readable gzip file: {exc}") from exc
    name = source.name[:-3] if source.name.lower().endswith(".gz") else source.name
    return Source(source.label, source.named, name, lambda: data, None, True, data)


def _format_of(source: Source) -> str | None:
    """The format by the file's name, else by its first bytes; None when neither says."""
    name = source.name.lower()
    fmt = _BY_SUFFIX.get(PurePosixPath(name).suffix)
    if fmt is None and ("poscar" in name or "contcar" in name):
        fmt = "poscar"
    if fmt is None:
        fmt = _sniff(source.head())
    if fmt == "zip" and _is_torch_zip(source):  # torch.save writes a zip holding <name>/data.pkl
        fmt = "cdvae-pt"
    return fmt


def _member_format(source: Source) -> str | None:
    """The format of a file inside a folder or zip; archives inside archives and VASP's other files are not read."""
    name = source.name.upper()
    if name.startswith(_VASP_FILES) and PurePosixPath(name.lower().removesuffix(".gz")).suffix not in _BY_SUFFIX:
        return None
    try:
        fmt = _format_of(_decompressed(source))
    except SampleFileError:
        return "unreadable"
    return None if fmt == "zip" else fmt


def _sniff(head: bytes) -> str | None:
    for magic, fmt in ((_ZIP_MAGIC, "zip"), (_SQLITE_MAGIC, "ase-db"), (_ULM_MAGIC, "ase-traj")):
        if head.startswith(magic):
            return fmt
    text = head.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith(("{", "[")):
        return "pymatgen-json"
    lines = text.splitlines()
    header = {cell.strip().strip('"') for cell in lines[0].split(",")} if lines else set()
    if header & set(STRUCTURE_COLUMNS):
        return "csv"
    if lines and atom_count(lines[0]) is not None:
        return "extxyz"
    if any(re.match(r"\s*data_", line, re.I) for line in lines):
        return "cif"
    if _looks_like_poscar(lines):
        return "poscar"
    return None


def _looks_like_poscar(lines: list[str]) -> bool:
    """Comment, scale (1 or 3 numbers), three lattice vectors: how every POSCAR begins."""
    if len(lines) < 6:
        return False
    return len(_numbers(lines[1])) in (1, 3) and all(len(_numbers(line)[:3]) == 3 for line in lines[2:5])


def _numbers(line: str) -> list[float]:
    numbers = []
    for token in line.split():
        try:
            numbers.append(float(token))
        except ValueError:
            break
    return numbers


def _is_torch_zip(source: Source) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(source.data())) as archive:
            return any(PurePosixPath(n).name == "data.pkl" for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(relative).parts)


# --- folders and zips, files no reader knows, entries to samples ------------------------------------------------

def _samples(entries: list[Entry]) -> list[Sample]:
    samples = []
    for index, (where, structure, problem) in enumerate(entries):
        sample = Sample(index, None, problem) if problem else make_sample(index, structure)
        samples.append(sample if sample.reason is None else Sample(index, None, f"{where}: {sample.reason}"))
    return samples


def _read_zip(source: Source) -> tuple[list[Entry], dict[str, int]]:
    try:
        archive = zipfile.ZipFile(source.path or io.BytesIO(source.data()))
    except zipfile.BadZipFile as exc:
        raise SampleFileError(f"{source.named}: not a zip file: {exc}") from exc
    with archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/") and not _hidden(n))
        members = [Source(f"{source.label}/{n}", f"{source.label}/{n}", PurePosixPath(n).name,
                           lambda n=n: archive.read(n)) for n in names]
        readable = [m for m in members if _member_format(m)]
        entries, counts = _read_members(source.named, readable)
        counts["unread"] = len(members) - len(readable)
        return entries, {k: v for k, v in counts.items() if v}


def _read_members(named: str, members: list[Source]) -> tuple[list[Entry], dict[str, int]]:
    """Every member of a folder or zip in name order; a member that cannot be read is one invalid entry."""
    entries: list[Entry] = []
    counts: dict[str, int] = {}
    for member in members:
        try:
            member = _decompressed(member)
            fmt = _format_of(member)
            entries += READERS[fmt](member)
        except SampleFileError as exc:
            fmt = "unreadable"
            entries.append((member.label, None, str(exc).removeprefix(f"{member.named}: ")))
        counts[fmt] = counts.get(fmt, 0) + 1
    if not members:
        raise SampleFileError(f"{named}: holds no files in a sample format ({', '.join(_BY_SUFFIX)}, POSCAR*, "
                              "CONTCAR*, or content that shows one)")
    return entries, counts


def _read_with_ase_or_pymatgen(source: Source, path: Path) -> tuple[list[Entry], str]:
    """A file in none of our formats: whatever ASE's readers (one sample per frame) or pymatgen's can make of it."""
    from ase.io import read
    from ase.io.formats import filetype
    from pymatgen.core import Structure

    problems = []
    try:
        ase_format = filetype(str(path))
        frames = read(str(path), index=":", format=ase_format)
        return [attempt(f"{source.label} frame {i}", from_atoms, a) for i, a in enumerate(frames)], f"ase:{ase_format}"
    except Exception as exc:
        problems.append(f"ASE: {type(exc).__name__}: {why(exc)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [(source.label, Structure.from_file(path), None)], "pymatgen"
    except Exception as exc:
        problems.append(f"pymatgen: {type(exc).__name__}: {why(exc)}")
    raise SampleFileError(f"{path}: unknown sample format ({'; '.join(problems)}); known: "
                          f"{', '.join(FORMATS)}, and whatever ASE or pymatgen reads")


