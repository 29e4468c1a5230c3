"""Datasets: verification by hash, clear errors for missing or malformed files, a cache of parsed structures."""

from __future__ import annotations

import gzip

import pytest

from harness import datasets
from harness.datasets import DatasetError, load_split, split_status
from harness.registry import get_registry


def test_loads_a_registered_dataset_and_unions_splits(tiny_dataset):
    test = load_split("tiny", "test")
    assert len(test) == 8 and test.dataset == "tiny"
    union = load_split("tiny", "val+test")
    assert len(union) == 12 and union.name == "val+test"
    assert union.sha256 == f"{load_split('tiny', 'val').sha256}+{test.sha256}"


def test_parsed_structures_are_cached_by_hash(tiny_dataset, monkeypatch):
    first = load_split("tiny", "test")
    monkeypatch.setattr(datasets, "parse_cif", lambda text: (_ for _ in ()).throw(AssertionError("parsed twice")))
    again = load_split("tiny", "test")
    assert [s.composition for s in again.structures] == [s.composition for s in first.structures]


def test_missing_split_names_the_file_and_the_alternatives(isolated):
    (isolated / "data" / "mp20").mkdir(parents=True)
    (isolated / "data" / "mp20" / "val.csv.gz").write_bytes(b"")
    with pytest.raises(DatasetError) as info:
        load_split("mp20", "train", download=False)
    message = str(info.value)
    assert "train.csv.gz" in message and "--train-split" in message and "val" in message


def test_hash_mismatch_is_refused(isolated):
    folder = isolated / "data" / "perov5"
    folder.mkdir(parents=True)
    (folder / "test.csv.gz").write_bytes(gzip.compress(b",material_id,cif\n"))
    card = get_registry().dataset("perov5")
    assert split_status(card, "test", isolated / "data").state == "hash mismatch"
    with pytest.raises(DatasetError, match="sha256"):
        load_split("perov5", "test", download=False)


def test_csv_without_cif_column_names_the_file(tiny_dataset):
    (tiny_dataset / "val.csv.gz").write_bytes(gzip.compress(b"material_id,structure\nx,y\n"))
    with pytest.raises(DatasetError, match=r"val\.csv\.gz: no 'cif' column"):
        load_split("tiny", "val")


def test_unparsable_cif_row_names_the_row(tiny_dataset):
    (tiny_dataset / "val.csv.gz").write_bytes(gzip.compress(b'material_id,cif\nok,"not a cif"\n'))
    with pytest.raises(DatasetError, match="row 2"):
        load_split("tiny", "val")


def test_unknown_split_lists_the_known_ones(tiny_dataset):
    with pytest.raises(DatasetError, match="has: train, val, test"):
        load_split("tiny", "validation")
