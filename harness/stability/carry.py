"""Carrying an unfinished run's relaxations to another machine or session: ``bench pack RUN_DIR``.

A run's relaxations are its dearest part (CHGNet on a 2-core CPU: about 70 ms per structure and FIRE step, so hours
for a thousand generated crystals) and they live in ``<run>/stability/``, which git does not track: a session that
ends before the record is written loses them. :func:`pack` writes every finished relaxation under the run folder
into one compact, committable file, ``<run>/relaxations.jsonl.gz`` (a line per relaxation: its file's path in the
run, the input structure's hash, energy, convergence, steps and the relaxed structure to 1e-6), merged with what the
file held already. :func:`restore` writes back the result files a folder lacks; every run path calls it when it
claims a run folder, so the same ``bench run`` command resumes where the packed run stopped. A carried result is used
only for the structure it relaxed (``input_sha256``; a sample regenerated differently is relaxed again).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from harness.io import atomic_write_gzip, atomic_write_json

ARCHIVE_NAME = "relaxations.jsonl.gz"
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


def restore(run_dir: Path) -> int:
    """Write back the packed result files ``run_dir`` lacks; returns how many. No archive: nothing to do."""
    run_dir = Path(run_dir)
    written = 0
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
