"""External-set manifests: schema, the committed manifests against the shared files, lookup by hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness import external
from harness.io import sha256_file
from harness.records import validate
from tests.conftest import tiny_structures, write_cif_csv

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


# ---- posted files read back for a record that names one instead of keeping a copy --------------------------------


@pytest.fixture
def toy_sets(tiny_dataset, tmp_path, monkeypatch):
    """Manifests of a model's posted file (in ``external-samples`` beside the data dir), the tiny test split itself
    and the first two rows of its val split, as the package's would be."""
    from harness.datasets import split_head_csv
    from harness.io import gzip_bytes

    posted = tmp_path / "external-samples" / "toy_tiny.csv.gz"
    write_cif_csv(posted, tiny_structures()[::-1])
    head = gzip_bytes(split_head_csv(tiny_dataset / "val.csv.gz", 2))
    folder = tmp_path / "manifests"
    folder.mkdir()
    write_manifest(folder, name="toy", dataset="tiny", file=posted.name, sha256=sha256_file(posted), n_rows=8)
    write_manifest(folder, name="data-tiny-test", dataset="tiny", file="test.csv.gz", status="dataset", split="test",
                   sha256=sha256_file(tiny_dataset / "test.csv.gz"), n_rows=8)
    write_manifest(folder, name="data-tiny-val-first2", dataset="tiny", file="tiny-val-first2.csv.gz", n_rows=2,
                   status="dataset", split="val", sha256=hashlib.sha256(head).hexdigest())
    monkeypatch.setattr(external, "MANIFEST_DIR", folder)
    return posted


def formulas(samples):
    return [s.structure.composition.reduced_formula for s in samples]


def test_a_posted_file_is_read_back_in_row_order_through_its_manifest(toy_sets):
    expected = [s.composition.reduced_formula for s in tiny_structures()]
    posted = external.get_manifest("toy").posted_samples()
    assert posted == {"manifest": "toy", "file": "toy_tiny.csv.gz", "sha256": sha256_file(toy_sets)}
    assert formulas(external.read_posted_samples(posted)) == expected[::-1]
    samples = external.read_posted_samples(external.get_manifest("data-tiny-test").posted_samples())
    assert [s.index for s in samples] == list(range(8)) and formulas(samples) == expected  # the split file itself
    head = external.read_posted_samples(external.get_manifest("data-tiny-val-first2").posted_samples())
    assert formulas(head) == expected[:2]  # its first rows, rebuilt byte for byte and checked by hash


def test_a_record_reads_its_posted_file_and_says_what_to_do_when_it_is_missing_or_differs(toy_sets, monkeypatch):
    from harness.run_samples import record_samples

    record = {"n_samples": 8, "files": {"samples": None, "per_sample": "per_sample.parquet",
                                        "posted_samples": external.get_manifest("toy").posted_samples()}}
    assert len(record_samples(toy_sets.parent, record)) == 8
    with pytest.raises(external.PostedFileError, match="holds 8 samples, the record 9"):
        record_samples(toy_sets.parent, {**record, "n_samples": 9})
    moved = toy_sets.rename(toy_sets.with_name("elsewhere.csv.gz"))
    with pytest.raises(external.PostedFileError, match=r"toy_tiny.csv.gz: missing: .* download it from owner/repo"):
        record_samples(toy_sets.parent, record)
    monkeypatch.setenv("XTALBENCH_EXTERNAL", str(toy_sets.parent / "mine"))
    (toy_sets.parent / "mine").mkdir()
    (toy_sets.parent / "mine" / "toy_tiny.csv.gz").write_bytes(moved.read_bytes() + b"\0")
    with pytest.raises(external.PostedFileError, match=r"mine/toy_tiny.csv.gz: sha256 .* not the posted file"):
        record_samples(toy_sets.parent, record)
    (toy_sets.parent / "mine" / "toy_tiny.csv.gz").write_bytes(moved.read_bytes())
    assert len(record_samples(toy_sets.parent, record)) == 8  # $XTALBENCH_EXTERNAL names the folder
    stale = {**record["files"]["posted_samples"], "sha256": "b" * 64}
    with pytest.raises(external.PostedFileError, match="evaluate the set again"):
        external.read_posted_samples(stale)


def test_a_dataset_set_whose_split_changed_is_refused(toy_sets, tiny_dataset):
    write_cif_csv(tiny_dataset / "val.csv.gz", tiny_structures()[1:5])
    with pytest.raises(external.PostedFileError, match="neither the file nor its first 2 rows"):
        external.read_posted_samples(external.get_manifest("data-tiny-val-first2").posted_samples())


def test_only_dataset_sets_name_a_split(tmp_path):
    with pytest.raises(external.ManifestError, match="split"):
        external.load_manifest(write_manifest(tmp_path, status="dataset"))
    with pytest.raises(external.ManifestError):
        external.load_manifest(write_manifest(tmp_path, split="test"))
    manifest = external.load_manifest(write_manifest(tmp_path, status="dataset", split="test"))
    assert manifest.split == "test" and manifest.as_json()["split"] == "test"
