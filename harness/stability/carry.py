"""Carrying an unfinished run to another machine or session: ``bench pack RUN_DIR``.

A run's relaxations are its dearest part (CHGNet on a 2-core CPU: about 70 ms per structure and FIRE step, so hours
for a thousand generated crystals) and they live in ``<run>/stability/``, which git does not track: a session that
ends before the record is written loses them. :func:`pack` writes every finished relaxation under the run folder
into one compact, committable file, ``<run>/relaxations.jsonl.gz`` (a line per relaxation: its file's path in the
run, the input structure's hash, energy, convergence, steps and the relaxed structure to 1e-6), merged with what the
file held already. :func:`restore` writes back the result files a folder lacks; every run path calls it when it
claims a run folder, so the same ``bench run`` command resumes where the packed run stopped. A carried result is used
only for the structure it relaxed (``input_sha256``; a sample regenerated differently is relaxed again).

A generation longer than a session (SymmCD's 10,000 MP-20 samples take hours on one core) is carried the same way:
the finished batches (``batches/NNNNN.json.gz``, also untracked) go into ``<run>/batches.jsonl.gz`` without what
pymatgen derives again on reading, and :func:`restore` puts back the ones a folder lacks, so the resumed run reads
the uninterrupted run's samples bit for bit and samples only the batches that never finished.
A finished run needs neither file: its samples and results are in the record's own files.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

from harness.io import atomic_write_gzip, atomic_write_json

ARCHIVE_NAME = "relaxations.jsonl.gz"
BATCHES_NAME = "batches.jsonl.gz"
_BATCH_PATH = re.compile(r"^(?:[A-Za-z0-9_.=+-]+/)*batches/\d{5}\.json\.gz$")  # runner.generate's file names
FORMAT = 1
_DIGITS = 6


def _compact_structure(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    from pymatgen.core import Structure

    if obj is None:
        return None
    structure = Structure.from_dict(obj)
    return {"lattice": [[round(x, _DIGITS) for x in row] for row in structure.lattice.matrix.tolist()],
            "species": [site.species_string for site in structure],
            "frac": [[round(x, _DIGITS) for x in row] for row in structure.frac_coords.tolist()]}


def _full_structure(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    from pymatgen.core import Lattice, Structure

    if obj is None:
        return None
    return Structure(Lattice(obj["lattice"]), obj["species"], obj["frac"]).as_dict()


def _entries(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / ARCHIVE_NAME
    if not path.exists():
        return {}
    entries = {}
    with gzip.open(path, "rt") as handle:
        for number, line in enumerate(handle, 1):
            try:
                entry = json.loads(line)
                entries[entry["path"]] = entry
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path} line {number}: not a packed relaxation ({exc})") from None
    return entries


def pack(run_dir: Path) -> tuple[int, int]:
    """Pack every relaxation result under ``run_dir/stability`` into ``run_dir/relaxations.jsonl.gz`` (merged with
    the entries already there; a result file on disk wins). Returns (entries in the archive, of them new)."""
    run_dir = Path(run_dir)
    entries = _entries(run_dir)
    before = set(entries)
    for path in sorted((run_dir / "stability").rglob("relax-*/*.json")):
        try:
            result = json.loads(path.read_text())
        except ValueError:
            continue  # a file being written elsewhere; the next pack takes it
        entries[path.relative_to(run_dir).as_posix()] = {
            "format": FORMAT, "path": path.relative_to(run_dir).as_posix(),
            "input_sha256": result.get("input_sha256"),
            "result": {**{k: v for k, v in result.items() if k not in ("structure", "input_sha256")},
                       "structure": _compact_structure(result.get("structure"))},
        }
    lines = "".join(json.dumps(entries[key], sort_keys=True) + "\n" for key in sorted(entries))
    atomic_write_gzip(run_dir / ARCHIVE_NAME, lines.encode())
    return len(entries), len(set(entries) - before)


_DERIVED_LATTICE_KEYS = ("a", "b", "c", "alpha", "beta", "gamma", "volume")


def _lean_structure(obj: dict[str, Any]) -> dict[str, Any]:
    """A Structure dict without what pymatgen derives again on reading (the lattice's lengths, angles and volume,
    each site's Cartesian ``xyz``, a label equal to the species): ``Structure.from_dict`` of it is the same
    structure, bit for bit, in about 40 % of the gzipped bytes."""
    lattice = {k: v for k, v in obj["lattice"].items() if k not in _DERIVED_LATTICE_KEYS}
    sites = []
    for site in obj["sites"]:
        lean = {k: v for k, v in site.items() if k != "xyz" and not (k == "properties" and not v)}
        if len(site["species"]) == 1 and site.get("label") == site["species"][0]["element"]:
            lean.pop("label")
        sites.append(lean)
    return {**obj, "lattice": lattice, "sites": sites}


def _read_batch(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError):
        return None  # not a finished batch: the resumed run samples it again
    return payload if isinstance(payload, dict) and "samples" in payload else None


def _packed_batches(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / BATCHES_NAME
    if not path.exists():
        return {}
    batches = {}
    with gzip.open(path, "rt") as handle:
        for number, line in enumerate(handle, 1):
            try:
                entry = json.loads(line)
                key, payload = entry["path"], entry["payload"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path} line {number}: not a packed generation batch ({exc})") from None
            if not _BATCH_PATH.match(key) or ".." in key.split("/"):
                raise ValueError(f"{path} line {number}: {key!r} is not a generation batch of the run")
            batches[key] = payload
    return batches


def packed_paths(run_dir: Path) -> tuple[set[str], set[str]]:
    """The run-relative paths of the relaxation results and of the generation batches ``bench pack`` holds for
    ``run_dir`` (ValueError on a line that is neither)."""
    return set(_entries(Path(run_dir))), set(_packed_batches(Path(run_dir)))


def pack_batches(run_dir: Path) -> tuple[int, int]:
    """Pack the finished generation batches under ``run_dir`` into ``run_dir/batches.jsonl.gz`` (merged with the
    archive's entries; a file on disk wins). Returns (batches in the archive, of them new). A folder without
    batches writes no archive."""
    run_dir = Path(run_dir)
    batches = _packed_batches(run_dir)
    before = set(batches)
    for path in sorted(run_dir.rglob("batches/*.json.gz")):
        key = path.relative_to(run_dir).as_posix()
        payload = _read_batch(path) if _BATCH_PATH.match(key) else None
        if payload is not None:
            samples = [{**e, "structure": _lean_structure(e["structure"])} if "structure" in e else e
                       for e in payload["samples"]]
            batches[key] = {**payload, "samples": samples}
    if not batches:
        return 0, 0
    lines = "".join(json.dumps({"path": key, "payload": batches[key]}) + "\n" for key in sorted(batches))
    atomic_write_gzip(run_dir / BATCHES_NAME, lines.encode())
    return len(batches), len(set(batches) - before)


def restore(run_dir: Path) -> int:
    """Write back the packed result and batch files ``run_dir`` lacks; returns how many. No archive: nothing to do."""
    run_dir = Path(run_dir)
    written = 0
    for key, payload in _packed_batches(run_dir).items():
        target = run_dir / key
        if not target.exists():
            atomic_write_gzip(target, json.dumps(payload).encode())
            written += 1
    for key, entry in _entries(run_dir).items():
        target = run_dir / key
        if ".." in Path(key).parts or not key.startswith("stability/"):
            raise ValueError(f"{run_dir / ARCHIVE_NAME}: entry {key!r} points outside the run's stability folder")
        if target.exists():
            continue
        result = {**entry["result"], "structure": _full_structure(entry["result"].get("structure"))}
        if entry.get("input_sha256") is not None:
            result["input_sha256"] = entry["input_sha256"]
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(target, result)
        written += 1
    return written
