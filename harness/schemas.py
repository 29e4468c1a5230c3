"""The versioned JSON contracts of the files beside run records: benchmark results, checkpoint manifests and the
papers' published figures.

Each such file carries ``schema_version``; its schema is package data (``harness/schema/<kind>.schema.json``),
checked with JSON Schema Draft 2020-12 as run records are (harness/records.py).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

BENCHMARK_SCHEMA_VERSION = 1  # results/benchmarks/*.json, results/training/**/*.json (benchmarks/common.py)
CHECKPOINT_MANIFEST_VERSION = 1  # plugins/*/checkpoints/*.manifest.json, the manifest inside a .pt, manifest.json
PUBLISHED_SCHEMA_VERSION = 1  # harness/data/published.json
KINDS = ("benchmark", "manifest", "published")


class SchemaError(ValueError):
    """A benchmark result, checkpoint manifest or published-figures file does not match its schema."""


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON schema of ``kind``: ``benchmark``, ``manifest`` or ``published``."""
    if kind not in KINDS:
        raise ValueError(f"no schema for {kind!r}; known: {', '.join(KINDS)}")
    text = resources.files("harness").joinpath(f"schema/{kind}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate(data: Any, kind: str, where: str | None = None) -> None:
    """Raise SchemaError naming the first violation of ``kind``'s schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(kind))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        path = "/".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise SchemaError(f"{where or kind}: {path}: {errors[0].message}")


def upgrade_manifest(manifest: dict[str, Any], where: str = "manifest") -> dict[str, Any]:
    """A checkpoint manifest at the current version. One without ``schema_version`` predates versioning and has
    version 1's fields: the manifests inside the shipped ``.pt`` files are such, as rewriting a checkpoint would
    change the sha256 that run records pin."""
    version = manifest.get("schema_version", 0)
    if type(version) is not int or not 0 <= version <= CHECKPOINT_MANIFEST_VERSION:
        raise SchemaError(f"{where}: schema_version {version!r} is not known to this xtalbench "
                          f"(reads {CHECKPOINT_MANIFEST_VERSION})")
    if version == 0:
        return {"schema_version": 1, **manifest}
    return manifest
