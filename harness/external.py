"""Manifests of sample sets published by other models (package data ``harness/data/external/<name>.json``), matched to
files by hash."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.io import sha256_file
from harness.protocol import TIERS

MANIFEST_DIR = Path(__file__).resolve().parent / "data" / "external"  # package data: present in a wheel too
MANIFEST_VERSION = 1
STATUSES = ("raw", "filtered", "relaxed", "reconstruction", "dataset")  # dataset: a split scored as samples


class ManifestError(ValueError):
    """A manifest file is unreadable or does not match the manifest schema."""


@dataclass(frozen=True)
class ExternalManifest:
    """What an external sample set is, where it came from, and the caveats a reader must see beside it."""

    name: str
    model: str
    paper: str
    dataset: str
    trained_on: str
    file: str
    sha256: str
    n_rows: int
    source: str
    status: str
    caveats: tuple[str, ...]

    @property
    def plugin_dir(self) -> str:
        """The folder its records live in: ``results/<dataset>/external-<name>/``."""
        return f"external-{self.name}"

    @property
    def rankable(self) -> bool:
        """Raw model output of the protocol's full size may be ranked beside generated full-tier runs."""
        return self.status == "raw" and self.n_rows == TIERS["full"].n_samples

    def as_json(self) -> dict[str, Any]:
        """The manifest as plain JSON types (``dataclasses.asdict`` would keep ``caveats`` a tuple, which the
        record schema's ``array`` refuses)."""
        return {"schema_version": MANIFEST_VERSION, **asdict(self), "caveats": list(self.caveats)}

    def record_fields(self) -> dict[str, Any]:
        """The ``external`` object of a run record (record.schema.json)."""
        return {"model": self.model, "paper": self.paper, "source": self.source, "status": self.status,
                "caveats": list(self.caveats)}


@cache
def schema() -> dict[str, Any]:
    text = resources.files("harness").joinpath("schema/external.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_manifest(data: dict[str, Any], where: str = "manifest") -> None:
    """Raise ManifestError naming the first schema violation."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        path = "/".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise ManifestError(f"{where}: {path}: {errors[0].message}")


def load_manifest(path: str | Path) -> ExternalManifest:
    """Read and validate one manifest file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    validate_manifest(data, str(path))
    fields = {key: value for key, value in data.items() if key != "schema_version"}
    fields["caveats"] = tuple(fields["caveats"])
    return ExternalManifest(**fields)


def load_manifests(manifest_dir: str | Path | None = None) -> list[ExternalManifest]:
    """Every manifest in ``manifest_dir`` (default: the package's ``harness/data/external/``), sorted by name."""
    folder = Path(manifest_dir) if manifest_dir is not None else MANIFEST_DIR
    manifests = [load_manifest(path) for path in sorted(folder.glob("*.json"))]
    names = [m.name for m in manifests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError(f"{folder}: duplicate manifest names {duplicates}")
    return sorted(manifests, key=lambda m: m.name)


def find_manifest(sample_file: str | Path, manifest_dir: str | Path | None = None) -> ExternalManifest | None:
    """The manifest whose sha256 matches ``sample_file``'s, or None (the file name does not matter)."""
    if not Path(sample_file).is_file():
        return None
    digest = sha256_file(sample_file)
    for manifest in load_manifests(manifest_dir):
        if manifest.sha256 == digest:
            return manifest
    return None
