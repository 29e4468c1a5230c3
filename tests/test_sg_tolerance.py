"""benchmarks/sg_tolerance.py: a run's space groups come from its valid samples, and the committed figures agree
with the records they name."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import sg_tolerance  # noqa: E402


def test_fractions_lists_the_most_common_groups_first():
    assert sg_tolerance.fractions([225, 225, 225, 1]) == {"225": 0.75, "1": 0.25}


def test_run_samples_counts_valid_samples_only(tmp_path):
    table = pd.DataFrame({"valid": [True, False, True, None], "spacegroup": pd.array([225, 1, 62, None], dtype="Int64")})
    table.to_parquet(tmp_path / "per_sample.parquet")
    record = {"plugin": {"name": "toy"}, "metrics": {"sg_jsd": 0.5, "sg_jsd_symmcd": 0.4}}
    (tmp_path / "record.json").write_text(json.dumps(record))
    numbers, info = sg_tolerance.run_samples(tmp_path)
    assert numbers == [225, 62]
    assert info["n_valid"] == 2 and info["plugin"] == "toy" and info["record_sg_jsd"] == 0.5


@pytest.mark.parametrize("path", sorted((REPO / "results" / "benchmarks").glob("sg_tolerance_*.json")), ids=lambda p: p.name)
def test_committed_figures_match_the_records_they_name(path):
    result = json.loads(path.read_text())
    for run in result["runs"]:
        record = json.loads((REPO / run["run"] / "record.json").read_text())
        assert run["sg_jsd_recomputed"] == pytest.approx(record["metrics"]["sg_jsd"], abs=1e-9)
        assert run["sg_jsd_symmcd_recomputed"] == pytest.approx(record["metrics"]["sg_jsd_symmcd"], abs=1e-9)
