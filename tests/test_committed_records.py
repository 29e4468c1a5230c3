"""Every committed run record validates against the schema and names files that exist beside it, or, for an external
set, the posted file its manifest pins; what results/ tracks in git is what a clone needs, and no more (issue 25)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.records import iter_record_paths, load_record

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
RECORDS = list(iter_record_paths(RESULTS))
TRACKED_RESULTS_LIMIT = 30_000_000  # bytes under results/ in git (issue 25)
PLOT_LINK = re.compile(r"\]\(([^)\s]+\.png)\)|src=\"([^\"]+\.png)\"")


def tracked(under: str = "results") -> set[str]:
    """Paths git tracks under ``under`` (relative to the checkout); the test is skipped outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", under], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return {p for p in out.stdout.decode().split("\0") if p}


def test_there_are_committed_records():
    assert RECORDS, f"no record.json under {RESULTS}"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_record_is_valid_and_complete(path):
    from harness.external import get_manifest

    record = load_record(path)
    assert path.parent.parent.parent.name == record["dataset"]
    files = dict(record["files"])
    posted = files.pop("posted_samples", None)
    retired = files.pop("retired_samples", None)  # read back from git history (bench retire)
    for name in files.values():
        if name:
            assert (path.parent / name).exists(), f"{path}: names {name}, which is missing"
    if record["kind"] == "external" and record["external"].get("manifest"):  # the posted file, never a copy
        manifest = get_manifest(record["external"]["manifest"])
        assert files["samples"] is None and posted == manifest.posted_samples(), path
        assert posted["sha256"] == record["data"]["samples_sha256"], path
    else:
        assert bool(files["samples"]) != bool(retired) and posted is None, path


def test_files_a_committed_record_names_are_tracked_and_an_external_sets_samples_are_not():
    """A clone holds every file a tracked record names beside it, or in the commit that retired it; an external set's
    posted file (a dataset split, for the data-* sets) is read through its manifest and never committed."""
    files = tracked()
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip() == "true"
    for record_path in sorted(p for p in files if p.endswith("/record.json")):
        record = load_record(ROOT / record_path)
        folder = record_path.rsplit("/", 1)[0]
        for key, name in record["files"].items():
            if key not in ("posted_samples", "retired_samples") and name:
                assert f"{folder}/{name}" in files, f"{record_path} names {name}, which git does not track"
        retired = record["files"].get("retired_samples")
        if retired and not shallow:  # the commit it names holds the file (a clone with history reads it back)
            assert retired["path"] == f"{folder}/{retired['file']}", record_path
            assert subprocess.run(["git", "cat-file", "-e", f"{retired['commit']}:{retired['path']}"], cwd=ROOT,
                                  capture_output=True).returncode == 0, f"{record_path}: retired samples not in git"
        if record["files"].get("posted_samples"):
            assert not [p for p in files if p.startswith(f"{folder}/samples.")], f"{folder}: a copy of posted samples"


def test_tracked_plots_are_the_ones_committed_markdown_links():
    """Plots are regenerable (bench report, bench train): git tracks a PNG under results/ only where a tracked
    markdown file (a report, the README, a leaderboard) shows it, and every PNG such a file shows is tracked."""
    files = tracked(".")
    plots = {p for p in files if p.startswith("results/") and p.endswith(".png")}
    linked = set()
    for markdown in (p for p in files if p.endswith(".md")):
        text = (ROOT / markdown).read_text(encoding="utf-8", errors="replace")
        for match in PLOT_LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if "://" not in target:
                linked.add(os.path.normpath(os.path.join(os.path.dirname(markdown), target)))
    assert not sorted(plots - linked), "tracked plots no markdown links (untrack them; .gitignore keeps them out)"
    assert not sorted(p for p in linked if p.startswith("results/") and p not in files), "linked plots not tracked"


def test_tracked_results_stay_small():
    size = sum((ROOT / p).stat().st_size for p in tracked() if (ROOT / p).is_file())
    assert size <= TRACKED_RESULTS_LIMIT, f"results/ tracks {size / 1e6:.1f} MB (limit {TRACKED_RESULTS_LIMIT / 1e6:.0f} MB)"


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
