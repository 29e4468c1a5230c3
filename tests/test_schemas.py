"""Benchmark results, checkpoint manifests and the published figures carry ``schema_version`` and match their
schemas (harness/schema/), and each schema refuses a file that breaks it."""

from __future__ import annotations

import copy
import fnmatch
import json
import shlex
from pathlib import Path

import jsonschema
import pytest

from harness.schemas import KINDS, SchemaError, schema, upgrade_manifest, validate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
BENCHMARK_RESULTS = sorted(RESULTS.glob("benchmarks/*.json")) + sorted(
    path for path in RESULTS.glob("training/**/*.json") if path.name != "manifest.json")
MANIFESTS = sorted(REPO.glob("plugins/*/checkpoints/*.manifest.json")) + sorted(
    RESULTS.glob("training/*/*/manifest.json"))
SHIPPED_CHECKPOINTS = sorted(REPO.glob("plugins/*/checkpoints/*.pt"))
PUBLISHED = REPO / "harness" / "data" / "published.json"


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_committed_files_to_check():
    assert len(BENCHMARK_RESULTS) >= 20 and len(MANIFESTS) >= 6 and len(SHIPPED_CHECKPOINTS) >= 6


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_a_draft_2020_12_schema_shipped_as_package_data(kind):
    jsonschema.Draft202012Validator.check_schema(schema(kind))
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(f"schema/{kind}.schema.json", pattern) for pattern in package_data["harness"])


@pytest.mark.parametrize("path", BENCHMARK_RESULTS, ids=relative)
def test_committed_benchmark_result_matches_the_schema(path):
    validate(load(path), "benchmark", relative(path))


@pytest.mark.parametrize("path", MANIFESTS, ids=relative)
def test_committed_checkpoint_manifest_matches_the_schema(path):
    validate(load(path), "manifest", relative(path))


@pytest.mark.parametrize("path", SHIPPED_CHECKPOINTS, ids=relative)
def test_shipped_checkpoint_is_described_by_a_valid_manifest(path):
    """The manifest beside a checkpoint describes it; one inside the payload (written before manifests had a
    version, and never rewritten: records pin the file's sha256) upgrades to the one beside it."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False)
    beside = load(path.with_name(f"{path.stem}.manifest.json"))
    assert beside["epochs"] == payload["epoch"] and beside["seed"] == payload.get("seed", beside["seed"])
    if "manifest" in payload:
        embedded = upgrade_manifest(payload["manifest"], relative(path))
        validate(embedded, "manifest", relative(path))
        assert embedded == beside


def test_published_figures_match_the_schema():
    validate(load(PUBLISHED), "published", relative(PUBLISHED))


def test_the_shared_benchmark_header_matches_the_schema(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import common

    argv = ["--dataset", "perov5", "--published-source", "SymmCD paper, table 2"]
    header = common.result_header("roundtrip", argv)
    validate(header, "benchmark")
    assert header["schema_version"] == 1 and header["benchmark"] == "roundtrip"
    assert shlex.split(header["command"]) == ["python", "benchmarks/roundtrip.py", *argv]
    assert common.result_header("peak_memory", command="bench evaluate x.csv")["command"] == "bench evaluate x.csv"


# ---- each schema refuses what it should -------------------------------------------------------------------------


def broken(data: dict, path: tuple, value) -> dict:
    """A copy of ``data`` with the key at ``path`` set to ``value`` (removed when ``value`` is ``...``)."""
    data = copy.deepcopy(data)
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return data


def good_benchmark_result() -> dict:
    return {"schema_version": 1, "benchmark": "roundtrip", "command": "python benchmarks/roundtrip.py",
            "created": "2026-12-03T08:00:00+00:00", "git": {"commit": "0" * 40, "dirty": False},
            "hardware": {"cpu": "x", "cores": 2, "memory_gb": 23.5, "gpu": None, "platform": "Linux"},
            "versions": {"torch": "2.13.0", "chgnet": None}, "match_rate": 0.99}


BAD_BENCHMARK_RESULTS = {
    "no schema_version": (("schema_version",), ...),
    "schema_version a string": (("schema_version",), "1"),
    "schema_version a boolean": (("schema_version",), True),
    "an unknown schema_version": (("schema_version",), 2),
    "no benchmark": (("benchmark",), ...),
    "no command": (("command",), ...),
    "command a list": (("command",), ["python", "benchmarks/roundtrip.py"]),
    "created not a time": (("created",), "yesterday"),
    "git without dirty": (("git", "dirty"), ...),
    "cores a string": (("hardware", "cores"), "2"),
    "a version a number": (("versions", "torch"), 2.13),
}


@pytest.mark.parametrize("case", sorted(BAD_BENCHMARK_RESULTS))
def test_benchmark_schema_refuses(case):
    validate(good_benchmark_result(), "benchmark")
    with pytest.raises(SchemaError):
        validate(broken(good_benchmark_result(), *BAD_BENCHMARK_RESULTS[case]), "benchmark")


def test_a_null_command_is_allowed_for_results_that_never_recorded_one():
    validate(broken(good_benchmark_result(), ("command",), None), "benchmark")


BAD_MANIFESTS = {
    "no schema_version": (("schema_version",), ...),
    "schema_version a string": (("schema_version",), "1"),
    "no generator": (("generator",), ...),
    "no data_sha256": (("data_sha256",), ...),
    "data_sha256 not a hash": (("data_sha256",), "toy-sha"),
    "epochs a string": (("epochs",), "589"),
    "negative epochs": (("epochs",), -1),
    "git_commit a branch name": (("git_commit",), "main"),
    "a loss a string": (("final_losses", "total"), "16.5"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_manifest_schema_refuses(case):
    good = load(MANIFESTS[0])
    validate(good, "manifest")
    with pytest.raises(SchemaError):
        validate(broken(good, *BAD_MANIFESTS[case]), "manifest")


def test_an_unversioned_manifest_upgrades_and_an_unknown_version_is_refused():
    current = load(MANIFESTS[0])
    unversioned = {k: v for k, v in current.items() if k != "schema_version"}
    with pytest.raises(SchemaError, match="schema_version"):
        validate(unversioned, "manifest")
    assert upgrade_manifest(unversioned) == current
    assert upgrade_manifest(current) is current
    for version in (2, "1", None):
        with pytest.raises(SchemaError, match="not known"):
            upgrade_manifest({**current, "schema_version": version})


BAD_PUBLISHED = {
    "no schema_version": (("schema_version",), ...),
    "schema_version a float string": (("schema_version",), "1.0"),
    "no rows": (("rows",), ...),
    "a row without a source": (("rows", 0, "source"), ...),
    "a metric in percent text": (("rows", 0, "metrics", "struct_valid"), "100%"),
    "a metric key not a protocol key": (("rows", 0, "metrics", "Struct Valid"), 1.0),
    "a row field the leaderboard does not know": (("rows", 0, "url"), "https://example.org"),
    "caveats a string": (("rows", 0, "caveats"), "one caveat"),
}


@pytest.mark.parametrize("case", sorted(BAD_PUBLISHED))
def test_published_schema_refuses(case):
    good = load(PUBLISHED)
    with pytest.raises(SchemaError):
        validate(broken(good, *BAD_PUBLISHED[case]), "published")
