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
DATA = Path("/work/shared/datasets")


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


def model_manifests() -> list[external.ExternalManifest]:
    return [m for m in external.load_manifests() if m.status != "dataset"]


def test_committed_manifests_load_and_are_consistent():
    manifests = model_manifests()
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
    by_file = {m.file: m for m in model_manifests()}
    files = sorted(p.name for p in SHARED.glob("*.csv.gz"))
    assert sorted(by_file) == files
    for name in files:
        manifest = by_file[name]
        assert manifest.sha256 == sha256_file(SHARED / name), name
        assert manifest.n_rows == len(pd.read_csv(SHARED / name)), name
        assert name.endswith(f"_{manifest.dataset}.csv.gz")


@pytest.mark.skipif(not (DATA / "mp20" / "val.csv.gz").exists(), reason="needs the shared datasets")
def test_dataset_manifests_pin_the_split_files_and_their_reproducible_heads(tmp_path):
    """Test splits by their own hash; the first-1,000 validation files as benchmarks/split_head.py writes them."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import split_head

    data = [m for m in external.load_manifests() if m.status == "dataset"]
    assert sorted(m.name for m in data) == ["data-mp20-test", "data-mp20-val-first1000", "data-perov5-test",
                                            "data-perov5-val-first1000"]
    for manifest in data:
        if manifest.name.endswith("-test"):
            path = DATA / manifest.dataset / "test.csv.gz"
        else:
            path = tmp_path / manifest.file
            assert split_head.main(["--dataset", manifest.dataset, "--split", "val", "--n", "1000",
                                    "--out", str(path), "--data-dir", str(DATA)]) == 0
        assert sha256_file(path) == manifest.sha256, manifest.name
        assert external.find_manifest(path) == manifest
        assert manifest.n_rows == len(pd.read_csv(path)) and manifest.caveats


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
