"""Manifests of sample sets published by other models (package data ``harness/data/external/<name>.json``), matched to
files by hash, and the posted files themselves, read back for a record that names one instead of keeping a copy."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness import paths
from harness.evaluation_types import Sample
from harness.io import sha256_file
from harness.protocol import TIERS
from harness.samples import SampleFileError

MANIFEST_DIR = Path(__file__).resolve().parent / "data" / "external"  # package data: present in a wheel too
MANIFEST_VERSION = 1
STATUSES = ("raw", "filtered", "relaxed", "reconstruction", "dataset")  # dataset: a split scored as samples


class ManifestError(ValueError):
    """A manifest file is unreadable or does not match the manifest schema."""


class PostedFileError(SampleFileError):
    """An external set's posted file is missing or is not the file its manifest pins; the message says what to do."""


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
    split: str | None = None  # status "dataset": the split the file is read from (no copy of it is kept)

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
        data = {"schema_version": MANIFEST_VERSION, **asdict(self), "caveats": list(self.caveats)}
        return data if self.split is not None else {k: v for k, v in data.items() if k != "split"}

    def record_fields(self) -> dict[str, Any]:
        """The ``external`` object of a run record (record.schema.json)."""
        return {"model": self.model, "paper": self.paper, "source": self.source, "status": self.status,
                "caveats": list(self.caveats)}

    def posted_samples(self) -> dict[str, str]:
        """The ``files.posted_samples`` of a record of this set: the posted file by name and sha256, read back through
        this manifest (:func:`read_posted_samples`) instead of a samples copy beside the record."""
        return {"manifest": self.name, "file": self.file, "sha256": self.sha256}


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


def get_manifest(name: str, manifest_dir: str | Path | None = None) -> ExternalManifest:
    """The manifest named ``name``; ManifestError when there is none."""
    for manifest in load_manifests(manifest_dir):
        if manifest.name == name:
            return manifest
    raise ManifestError(f"no external-set manifest named {name!r} in {manifest_dir or MANIFEST_DIR}")


def read_posted_samples(posted: dict[str, str], *, external_dir: str | Path | None = None,
                        data_dir: str | Path | None = None) -> list[Sample]:
    """The samples of the posted file a record names (``files.posted_samples``), in row order as ``bench evaluate``
    read them: a model's file from the external-samples folder (``paths.external_dir``), a dataset set's rows from
    the data directory's split file; either is verified against the manifest's sha256 first."""
    import tempfile

    from harness.sample_formats import read_sample_file

    try:
        manifest = get_manifest(posted["manifest"])
    except ManifestError as exc:
        raise PostedFileError(f"{exc}: this xtalbench cannot read the record's posted samples {posted['file']}") from exc
    if (manifest.file, manifest.sha256) != (posted["file"], posted["sha256"]):
        raise PostedFileError(
            f"the record names posted file {posted['file']} (sha256 {posted['sha256'][:16]}...), but manifest "
            f"{manifest.name} now pins {manifest.file} ({manifest.sha256[:16]}...): evaluate the set again")
    with tempfile.TemporaryDirectory(prefix="xtalbench-posted-") as tmp:
        if manifest.status == "dataset":
            path = _dataset_file(manifest, data_dir, Path(tmp))
        else:
            path = _model_file(manifest, paths.external_dir(external_dir, data_dir))
        return read_sample_file(path).samples


def _model_file(manifest: ExternalManifest, folder: Path) -> Path:
    path = folder / manifest.file
    fix = (f"download it from {manifest.source} into {folder}, or set ${paths.EXTERNAL_ENV} to the folder that "
           "holds it")
    if not path.is_file():
        raise PostedFileError(f"{path}: missing: the posted samples of external set {manifest.name!r} (sha256 "
                              f"{manifest.sha256[:16]}...); {fix}")
    digest = sha256_file(path)
    if digest != manifest.sha256:
        raise PostedFileError(f"{path}: sha256 {digest[:16]}... is not manifest {manifest.name}'s "
                              f"{manifest.sha256[:16]}...: not the posted file; {fix}")
    return path


def _dataset_file(manifest: ExternalManifest, data_dir: str | Path | None, tmp: Path) -> Path:
    """The split file itself when it is the pinned file, else its first ``n_rows`` rows written to ``tmp`` under the
    manifest's file name (as ``benchmarks/split_head.py`` writes them), when those are."""
    from harness.datasets import ensure_split_file, get_card, split_head_csv
    from harness.io import gzip_bytes

    root = paths.data_dir(data_dir)
    source = ensure_split_file(get_card(manifest.dataset), manifest.split, root)
    if sha256_file(source) == manifest.sha256:
        return source
    head = gzip_bytes(split_head_csv(source, manifest.n_rows))
    if hashlib.sha256(head).hexdigest() != manifest.sha256:
        raise PostedFileError(
            f"{source}: neither the file nor its first {manifest.n_rows:,} rows have manifest {manifest.name}'s sha256 "
            f"{manifest.sha256[:16]}...: not the {manifest.dataset} {manifest.split} split the set was evaluated on; "
            f"put the original {source.name} in {source.parent}")
    path = tmp / manifest.file
    path.write_bytes(head)
    return path
