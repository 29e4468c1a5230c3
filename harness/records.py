"""Run records: the versioned JSON contract that the CLI, leaderboards and users rely on (docs/protocol.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.io import atomic_write_json
from harness.protocol import METRIC_KEYS

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"
PER_SAMPLE_NAME = "per_sample.parquet"
SAMPLES_NAME = "samples.extxyz.gz"  # gzip (mtime 0): the same samples give the same bytes

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # where records' package-relative checkpoint paths point

# Upgraders from version N to N+1, applied in turn to old records when they are loaded.
UPGRADES: dict[int, Callable[[dict], dict]] = {}


class RecordError(ValueError):
    """A record file is unreadable, of an unknown schema version, or does not match the schema."""


@cache
def schema() -> dict[str, Any]:
    text = resources.files("harness").joinpath("schema/record.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def empty_metrics() -> dict[str, Any]:
    return {key: None for key in METRIC_KEYS}


def local_paths(obj: Any, where: str = "") -> list[str]:
    """Where ``obj`` holds an absolute file-system path (a record must mean the same on every machine)."""
    import re

    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += local_paths(value, f"{where}/{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += local_paths(value, f"{where}/{i}")
    elif isinstance(obj, str) and (obj.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", obj)):
        found.append(f"{where.lstrip('/') or '(top level)'}: {obj}")
    return found


def validate(record: dict[str, Any], where: str = "record") -> None:
    """Raise RecordError naming the first schema violation, or the first local path the record holds."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(map(str, first.absolute_path)) or "(top level)"
        raise RecordError(f"{where}: {path}: {first.message}")
    paths = local_paths(record)
    if paths:
        raise RecordError(f"{where}: holds a local path, which means nothing on another machine: {paths[0]}")


def upgrade(record: dict[str, Any], where: str = "record") -> dict[str, Any]:
    version = record.get("schema_version")
    if not isinstance(version, int):
        raise RecordError(f"{where}: no integer schema_version")
    if version > SCHEMA_VERSION or (version < SCHEMA_VERSION and version not in UPGRADES):
        raise RecordError(
            f"{where}: schema_version {version} is not known to this xtalbench (reads {SCHEMA_VERSION}); "
            "upgrade xtalbench to read it"
        )
    while record["schema_version"] < SCHEMA_VERSION:
        record = UPGRADES[record["schema_version"]](record)
    return record


def load_record(path: str | Path) -> dict[str, Any]:
    """Load, upgrade and validate a record; an unknown schema version is refused."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: cannot read record: {exc}") from exc
    record = upgrade(record, str(path))
    validate(record, str(path))
    return record


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Validate and write ``record.json`` atomically into ``run_dir``."""
    path = Path(run_dir) / RECORD_NAME
    validate(record, str(path))
    return atomic_write_json(path, record)


@cache
def shipped_checkpoint_sha256(path: str) -> str | None:
    """The sha256 of the checkpoint the installed plugins ship at package-relative ``path`` (a record's
    ``checkpoint.path``); None where none does (a third party's weights, a checkpoint from a run folder)."""
    from harness.io import sha256_file

    parts = Path(path).parts
    if not parts or parts[0] != "plugins" or ".." in parts or Path(path).is_absolute():
        return None
    file = PACKAGE_ROOT.joinpath(*parts)
    return sha256_file(file) if file.is_file() else None


def iter_record_paths(results_dir: str | Path) -> Iterator[Path]:
    yield from sorted(Path(results_dir).glob(f"**/{RECORD_NAME}"))


def resolve_record_path(path: str | Path) -> Path:
    """Accept a record file or the run folder holding it."""
    path = Path(path)
    return path / RECORD_NAME if path.is_dir() else path
