"""Every committed run record validates against the schema and names files that exist beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.records import iter_record_paths, load_record

RESULTS = Path(__file__).resolve().parent.parent / "results"
RECORDS = list(iter_record_paths(RESULTS))


def test_there_are_committed_records():
    assert RECORDS, f"no record.json under {RESULTS}"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_record_is_valid_and_complete(path):
    record = load_record(path)
    assert path.parent.parent.parent.name == record["dataset"]
    for name in record["files"].values():
        if name:
            assert (path.parent / name).exists(), f"{path}: names {name}, which is missing"
