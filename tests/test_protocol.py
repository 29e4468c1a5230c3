"""The protocol's one metric specification: the record schema, the composer, the cost keys and the leaderboard
columns are all read from it (or checked against it), so a metric is added or changed in one place."""

from __future__ import annotations

import pytest

from harness import leaderboard, leaderboard_html
from harness.costs import cost_metrics
from harness.metrics import METRICS as DISTRIBUTION_KEYS
from harness.protocol import FAMILIES, METRIC_KEYS, METRIC_SPECS, MetricSpec, family_keys, family_specs
from harness.records import empty_metrics, schema

SCHEMA_FOR_KIND = {
    "rate": {"$ref": "#/$defs/rate"},
    "distance": {"$ref": "#/$defs/nonneg"},
    "seconds": {"$ref": "#/$defs/nonneg"},
    "count": {"type": ["integer", "null"], "minimum": 0},
}


def test_keys_are_unique_and_every_family_computes_some():
    assert len(set(METRIC_KEYS)) == len(METRIC_KEYS) == len(METRIC_SPECS)
    assert all(family_specs(family) for family in FAMILIES)
    assert sum(len(family_keys(family)) for family in FAMILIES) == len(METRIC_KEYS)


def test_the_record_schema_lists_every_key_with_the_type_of_its_kind():
    metrics = schema()["properties"]["metrics"]
    assert metrics["required"] == list(METRIC_KEYS) and metrics["additionalProperties"] is False
    assert list(metrics["properties"]) == list(METRIC_KEYS)
    for spec in METRIC_SPECS:
        assert metrics["properties"][spec.key] == SCHEMA_FOR_KIND[spec.kind], spec.key
    assert list(empty_metrics()) == list(METRIC_KEYS)


def test_each_family_fills_the_keys_the_specification_gives_it():
    assert DISTRIBUTION_KEYS == family_keys("distribution")
    assert tuple(cost_metrics(1.0, 10, {"stable_rate": 0.5, "sun_rate": None})) == family_keys("cost")
    assert tuple(cost_metrics(None, 10, {})) == family_keys("cost")
    # The stability family's keys are checked where it runs (tests/test_stability.py).


def test_leaderboard_columns_are_the_specification_in_order():
    columns = [column for _, part, _ in leaderboard.TABLE_PARTS for column in part]
    assert columns == list(METRIC_SPECS)
    assert [column.family for column in leaderboard.TABLE_PARTS[0][1]] == ["distribution"] * 9
    assert set(leaderboard_html.HEADER_TYPES) >= {spec.title for spec in METRIC_SPECS}
    assert leaderboard_html.HEADER_TYPES["valid ↑"] == ("number", "max")
    assert leaderboard_html.HEADER_TYPES["n relaxed"] == ("number", "")


def test_title_shows_which_way_is_better():
    assert MetricSpec("x", "rate", "max", "x", "stability").title == "x ↑"
    assert MetricSpec("x", "distance", "min", "x", "distribution").title == "x ↓"
    assert MetricSpec("x", "count", None, "x", "stability").title == "x"


@pytest.mark.parametrize("fields", [("x", "ratio", "max", "x", "stability"), ("x", "rate", "up", "x", "stability"),
                                    ("x", "rate", "max", "x", "elsewhere")])
def test_a_metric_of_unknown_kind_direction_or_family_is_refused(fields):
    with pytest.raises(ValueError, match="'x'"):
        MetricSpec(*fields)
    with pytest.raises(ValueError, match="unknown metric family"):
        family_keys("elsewhere")


def test_the_relaxed_subset_size_is_defined_once():
    import argparse

    from harness.cli import evaluate as evaluate_cli
    from harness.cli import run as run_cli
    from harness.evaluation import EvaluationRequest
    from harness.protocol import SAMPLE_FILE_N_RELAX, TIERS, custom_tier

    assert [(t.n_samples, t.n_relax) for t in TIERS.values()] == [(10_000, 1_000), (1_000, 100)]
    assert custom_tier(1_000) == custom_tier(1_000, 100) and custom_tier(5).n_relax == 1
    assert custom_tier(12, 12).n_relax == 12 and custom_tier(12).name == "custom"
    assert EvaluationRequest(dataset="x").n_relax == SAMPLE_FILE_N_RELAX == 100
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    evaluate_cli.register(subparsers)
    run_cli.register(subparsers)
    assert parser.parse_args(["evaluate", "s.cif", "--dataset", "x"]).n_relax == SAMPLE_FILE_N_RELAX
    assert parser.parse_args(["run", "--plugin", "p", "--dataset", "x"]).n_relax is None  # the tier's
    assert "1,000 relaxed" in subparsers.choices["run"].format_help()
