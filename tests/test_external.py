"""External-set manifests: schema, the committed manifests against the shared files, lookup by hash."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness import external
from harness.io import sha256_file
from harness.records import validate

try:
    from test_leaderboard_records import make_record
except ImportError:  # tests/ imported as a package
    from tests.test_leaderboard_records import make_record

SHARED = Path("/work/shared/external-samples")


def manifest_dict(**overrides):
    data = {"schema_version": 1, "name": "toy", "model": "Toy", "paper": "Toy et al.", "dataset": "mp20",
            "trained_on": "train", "file": "toy_mp20.csv.gz", "sha256": "a" * 64, "n_rows": 3,
            "source": "owner/repo@abc/toy.csv", "status": "raw", "caveats": ["3 samples (< 10,000)"]}
    data.update(overrides)
    return data


def write_manifest(folder: Path, **overrides) -> Path:
    data = manifest_dict(**overrides)
    path = folder / f"{data['name']}.json"
    path.write_text(json.dumps(data))
    return path


def test_committed_manifests_load_and_are_consistent():
    manifests = external.load_manifests()
    assert len(manifests) == 15
    for manifest in manifests:
        assert manifest.dataset in ("mp20", "perov5", "carbon24")
        assert re.fullmatch(r"[\w.+-]+/[\w.+-]+@[0-9a-f]{40}/.+", manifest.source), manifest.source
        if manifest.n_rows < 10_000:
            assert any("< 10,000" in c for c in manifest.caveats), manifest.name
        if manifest.status != "raw":
            assert manifest.caveats, manifest.name
    assert [m.name for m in manifests if m.rankable] == ["diffcsp", "diffcsppp"]


@pytest.mark.skipif(not SHARED.exists(), reason="needs the shared external samples")
def test_manifests_match_the_shared_files():
    by_file = {m.file: m for m in external.load_manifests()}
    files = sorted(p.name for p in SHARED.glob("*.csv.gz"))
    assert sorted(by_file) == files
    for name in files:
        manifest = by_file[name]
        assert manifest.sha256 == sha256_file(SHARED / name), name
        assert manifest.n_rows == len(pd.read_csv(SHARED / name)), name
        assert name.endswith(f"_{manifest.dataset}.csv.gz")


def test_find_manifest_matches_by_hash_not_by_name(tmp_path):
    sample = tmp_path / "renamed.csv.gz"
    sample.write_bytes(b"cif\nnot really a cif\n")
    folder = tmp_path / "manifests"
    folder.mkdir()
    write_manifest(folder, sha256=sha256_file(sample))
    write_manifest(folder, name="other", file="renamed.csv.gz", sha256="b" * 64)
    found = external.find_manifest(sample, folder)
    assert found is not None and found.name == "toy"
    sample.write_bytes(b"cif\nother content\n")
    assert external.find_manifest(sample, folder) is None
    assert external.find_manifest(tmp_path, folder) is None  # a folder of CIFs has no manifest


def test_manifest_is_frozen_and_its_record_fields_fit_the_record_schema(tmp_path):
    manifest = external.load_manifest(write_manifest(tmp_path, status="filtered"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.status = "raw"
    assert not manifest.rankable
    assert manifest.plugin_dir == "external-toy"
    validate(make_record(manifest.plugin_dir, kind="external", tier="custom", n_samples=manifest.n_rows,
                         external=manifest.record_fields()))


@pytest.mark.parametrize("override", [{"status": "curated"}, {"sha256": "xyz"}, {"file": "dir/x.csv"},
                                      {"n_rows": -1}, {"unknown": 1}, {"schema_version": 2}])
def test_bad_manifests_are_refused_with_the_field_named(tmp_path, override):
    path = write_manifest(tmp_path, **override)
    with pytest.raises(external.ManifestError, match=str(path)):
        external.load_manifest(path)


def test_duplicate_names_are_refused(tmp_path):
    write_manifest(tmp_path)
    (tmp_path / "copy.json").write_text(json.dumps(manifest_dict()))
    with pytest.raises(external.ManifestError, match="duplicate"):
        external.load_manifests(tmp_path)


def test_as_json_round_trips_through_the_schema(tmp_path):
    manifest = external.load_manifest(write_manifest(tmp_path))
    data = manifest.as_json()
    assert isinstance(data["caveats"], list)
    external.validate_manifest(data)
    assert json.loads(json.dumps(data)) == manifest_dict()
