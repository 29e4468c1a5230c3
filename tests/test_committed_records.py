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


def test_a_record_holding_a_local_path_is_refused():
    from harness.records import RecordError, validate
    from tests.test_leaderboard_records import make_record

    record = make_record()
    validate(record)
    record["checkpoint"] = {"path": "/home/me/checkpoints/model.pt", "sha256": "0" * 64, "manifest": None}
    with pytest.raises(RecordError, match="local path.*checkpoint/path: /home/me/checkpoints/model.pt"):
        validate(record)


def test_portable_checkpoint_path_is_package_relative():
    from harness.runner import portable_path

    shipped = Path(__file__).resolve().parents[1] / "plugins" / "symmcd" / "checkpoints" / "mp20.pt"
    assert portable_path(shipped) == "plugins/symmcd/checkpoints/mp20.pt"
    assert portable_path("/somewhere/else/model.pt") == "model.pt"
