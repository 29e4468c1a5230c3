"""Hulls and relaxed reference energies shipped with xtalbench, so that a fresh machine skips the CHGNet work.

Building a dataset's hull scores every structure of its splits (15–30 min on 2 CPU cores), and protocol 1.1
relaxes, on demand, every dataset entry of the chemical systems the samples need (about a second each). Both are
deterministic functions of the dataset files, the CHGNet version and the settings, so their results are shipped as
package data (``harness/data/hulls/``, written by ``bench hull export``) and used when they match exactly:

- ``<dataset>-<hull cache key>.json.gz``: the hull as ``ReferenceHull.to_json`` gives it; its content hash is
  checked on load, and the cache key already names the split hashes, settings and chgnet version.
- ``relaxed-<hull sha256[:16]>-<settings key>.json.gz``: one record per relaxed entry, as the per-entry cache files
  hold them; read when an entry has no cache file of its own.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

from harness.io import atomic_write_gzip

__all__ = ["SHIPPED_DIR", "export_relaxed", "load_shipped_hull", "shipped_relaxed", "write_gzip_json"]

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "hulls"


def hull_file(dataset: str, cache_key: str, directory: Path | None = None) -> Path:
    return (directory or SHIPPED_DIR) / f"{dataset}-{cache_key}.json.gz"


def relaxed_file(hull_sha256: str, settings_key: str, directory: Path | None = None) -> Path:
    return (directory or SHIPPED_DIR) / f"relaxed-{hull_sha256[:16]}-{settings_key}.json.gz"


def write_gzip_json(path: Path, obj: Any) -> Path:
    """Atomically write ``obj`` as gzipped, key-sorted JSON (the same content gives the same bytes)."""
    return atomic_write_gzip(path, json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def _read_gzip_json(path: Path) -> Any:
    try:
        with gzip.open(path, "rt") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable gzipped JSON file ({error})") from error


def load_shipped_hull(dataset: str, cache_key: str, directory: Path | None = None):
    """The shipped hull for this cache key, or None; a file whose content hash differs raises ``HullError``."""
    from harness.stability.hull import HullError, ReferenceHull

    path = hull_file(dataset, cache_key, directory)
    if not path.exists():
        return None
    try:
        return ReferenceHull.from_json(_read_gzip_json(path))
    except (HullError, ValueError, KeyError) as error:
        raise HullError(f"shipped hull {path} is damaged: {error}") from error


@cache
def _relaxed_records(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    obj = _read_gzip_json(path)
    return dict(obj.get("entries", {}))


def shipped_relaxed(
    hull_sha256: str, settings_key: str, directory: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Entry id -> shipped relaxation record for this hull and these settings (empty when none is shipped)."""
    return _relaxed_records(relaxed_file(hull_sha256, settings_key, directory))


def export_relaxed(cache, directory: Path | None = None) -> tuple[Path, int]:
    """Merge the shipped records with every per-entry file in ``cache`` (a ``RelaxedReferenceCache``); write them.

    Returns the file and its number of entries. Records of another hull are skipped.
    """
    key = cache.settings_key
    path = relaxed_file(cache.hull_sha256, key, directory)
    entries = dict(_relaxed_records(path))
    for file in sorted(cache.directory.glob("*.json")) if cache.directory.exists() else []:
        record = json.loads(file.read_text())
        if record.get("hull_sha256") == cache.hull_sha256 and "entry_id" in record:
            entries[record["entry_id"]] = record
    payload = {
        "hull_sha256": cache.hull_sha256,
        "settings": cache.settings.as_dict(),
        "settings_key": key,
        "n_entries": len(entries),
        "entries": entries,
    }
    write_gzip_json(path, payload)
    _relaxed_records.cache_clear()
    return path, len(entries)
