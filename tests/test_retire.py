"""bench retire: a superseded record's samples leave the tree and are read back from the commit its record names."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from harness.records import load_record
from harness.run_samples import record_samples

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True, text=True).stdout.strip()


@pytest.fixture
def committed_run(tmp_path):
    """A finished run's folder (record and samples, as bench run writes them) inside a git repository, committed."""
    from pymatgen.core import Lattice, Structure

    from harness.io import atomic_write_gzip, sha256_text
    from harness.samples import Sample, structures_to_extxyz

    try:
        from test_leaderboard_records import make_record, write_run
    except ImportError:  # tests/ imported as a package
        from tests.test_leaderboard_records import make_record, write_run

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "t")
    samples = [Sample(i, Structure(Lattice.cubic(4.0 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
               for i in range(3)] + [Sample(3, None, "lattice length <= 0")]
    text = structures_to_extxyz(samples)
    record = make_record("trainset", dataset="tiny", run_id="r", tier="custom", n_samples=4)
    record["files"]["samples"] = "samples.extxyz.gz"
    record["data"]["samples_sha256"] = sha256_text(text)
    run_dir = write_run(repo / "results", record).parent
    atomic_write_gzip(run_dir / "samples.extxyz.gz", text.encode())
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a run")
    return run_dir


def _structures(run_dir):
    return [(s.index, s.structure, s.reason) for s in record_samples(run_dir, load_record(run_dir / "record.json"))]


def test_retired_samples_leave_the_folder_and_read_back_the_same_from_git(committed_run, capsys):
    from harness.cli.main import main

    before = _structures(committed_run)
    assert main(["retire", str(committed_run)]) == 0
    assert "samples.extxyz.gz retired" in capsys.readouterr().out
    record = load_record(committed_run / "record.json")
    head = _git(committed_run, "rev-parse", "HEAD")
    assert record["files"]["samples"] is None
    assert record["files"]["retired_samples"] == {"file": "samples.extxyz.gz", "commit": head,
                                                  "path": "results/tiny/trainset/r/samples.extxyz.gz"}
    assert not (committed_run / "samples.extxyz.gz").exists()
    assert _structures(committed_run) == before
    assert main(["retire", str(committed_run)]) == 2 and "names no samples file" in capsys.readouterr().err


def test_only_a_committed_unchanged_file_is_retired(committed_run):
    from harness.retire import RetireError, retire

    samples = committed_run / "samples.extxyz.gz"
    original = samples.read_bytes()
    samples.write_bytes(b"not gzip")
    with pytest.raises(RetireError, match="not a gzipped samples file"):
        retire(committed_run)
    samples.write_bytes(original)
    _git(committed_run, "rm", "-q", "--cached", str(samples))
    _git(committed_run, "commit", "-qm", "untrack the samples")
    with pytest.raises(RetireError, match="git show"):
        retire(committed_run)
    assert samples.read_bytes() == original and load_record(committed_run / "record.json")["files"]["samples"]


def test_a_retired_file_that_git_cannot_give_back_is_a_clear_error(committed_run):
    from harness.retire import retire
    from harness.samples import SampleFileError

    retire(committed_run)
    record_path = committed_run / "record.json"
    record = json.loads(record_path.read_text())
    record["files"]["retired_samples"]["commit"] = "0" * 40  # a clone without that history
    record_path.write_text(json.dumps(record))
    with pytest.raises(SampleFileError, match="not readable from git"):
        record_samples(committed_run, load_record(record_path))


def test_the_shipped_checkpoints_record_keeps_its_samples(committed_run, tmp_path, monkeypatch):
    from harness import records
    from harness.io import sha256_file
    from harness.retire import RetireError, retire

    shipped = tmp_path / "pkg" / "plugins" / "trainset" / "checkpoints" / "tiny.pt"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"weights")
    monkeypatch.setattr(records, "PACKAGE_ROOT", tmp_path / "pkg")
    records.shipped_checkpoint_sha256.cache_clear()
    record_path = committed_run / "record.json"
    record = json.loads(record_path.read_text())
    record["checkpoint"] = {"path": "plugins/trainset/checkpoints/tiny.pt", "sha256": sha256_file(shipped),
                            "manifest": None}
    record_path.write_text(json.dumps(record))
    try:
        with pytest.raises(RetireError, match="ships now"):
            retire(committed_run)
    finally:
        records.shipped_checkpoint_sha256.cache_clear()
