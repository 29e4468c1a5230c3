"""Retiring a superseded record's samples file from the tree: ``bench retire RUN_DIR``.

A full-tier record's samples are most of its size (1.9–2.5 MB of an MP-20 record's 2.4–3.0), and the tree keeps what
a clone needs small (tests/test_committed_records.py). When a generator is retrained, the records of its earlier checkpoints stay
(their metrics, per-sample table and report are what later records are compared with) but their samples need not sit
in every checkout: git holds them. :func:`retire` checks that the file is committed unchanged and is the one the
record hashed, names the commit in the record (``files.retired_samples``) and removes the file from the folder;
:func:`read_retired` reads it back from that commit, sha256 checked, so every reader of a record's samples
(``bench relax``, ``bench rescore``, the benchmarks) still works in any clone with history. The record's checkpoint
must not be the one its plugin ships now: the current model's samples stay in the tree.
"""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path
from typing import Any

from harness.io import sha256_text
from harness.records import RECORD_NAME, RecordError, load_record, shipped_checkpoint_sha256, write_record


class RetireError(RuntimeError):
    """A record whose samples cannot be retired (or read back), with the reason."""


def _git(args: list[str], cwd: Path, *, binary: bool = False) -> str | bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True)
    except FileNotFoundError:
        raise RetireError("git is not installed; retired samples live in the repository's history") from None
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise RetireError(f"git {' '.join(args)}: {message[-1] if message else 'failed'}") from None
    return done.stdout if binary else done.stdout.decode().strip()


def _samples_text(data: bytes, where: str) -> str:
    try:
        return gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise RetireError(f"{where}: not a gzipped samples file ({exc})") from None


def retire(run_dir: str | Path) -> dict[str, Any]:
    """Remove ``run_dir``'s samples file from the folder, naming in its record the commit that holds it; returns the
    record's new ``files.retired_samples``. Raises RetireError saying why a record's samples cannot be retired."""
    run_dir = Path(run_dir).resolve()
    record_path = run_dir / RECORD_NAME
    try:
        record = load_record(record_path)
    except RecordError as exc:
        raise RetireError(str(exc)) from None
    name = record["files"].get("samples")
    if not name:
        raise RetireError(f"{record_path}: names no samples file of its own (retired already, or an external set)")
    checkpoint = record.get("checkpoint") or {}
    shipped = shipped_checkpoint_sha256(checkpoint["path"]) if checkpoint.get("path") else None
    if shipped is not None and shipped == checkpoint.get("sha256"):
        raise RetireError(f"{record_path}: its checkpoint is the one {record['plugin']['name']} ships now "
                          f"({checkpoint['path']}); the current model's samples stay in the tree")
    path = run_dir / name
    if not path.is_file():
        raise RetireError(f"{path}: missing")
    text = _samples_text(path.read_bytes(), str(path))
    if sha256_text(text) != record["data"]["samples_sha256"]:
        raise RetireError(f"{path}: not the samples the record hashed (data.samples_sha256)")
    top = Path(_git(["rev-parse", "--show-toplevel"], run_dir))
    relative = path.relative_to(top).as_posix()
    commit = _git(["rev-parse", "HEAD"], top)
    committed = _git(["show", f"{commit}:{relative}"], top, binary=True)
    if committed != path.read_bytes():
        raise RetireError(f"{path}: differs from the committed file (commit it first: retiring needs it in history)")
    retired = {"file": name, "path": relative, "commit": commit}
    record["files"] = {**record["files"], "samples": None, "retired_samples": retired}
    write_record(run_dir, record)
    path.unlink()
    return retired


def read_retired(run_dir: str | Path, record: dict[str, Any]) -> str:
    """The extxyz text of a record's retired samples, read from the commit its record names, sha256 checked."""
    retired = record["files"]["retired_samples"]
    run_dir = Path(run_dir).resolve()
    where = f"{run_dir}: retired samples {retired['path']} at {retired['commit'][:10]}"
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], run_dir))
        data = _git(["show", f"{retired['commit']}:{retired['path']}"], top, binary=True)
    except RetireError as exc:
        raise RetireError(f"{where}: not readable from git ({exc}); a clone with history has them "
                          f"(`git fetch --unshallow` in a shallow one)") from None
    text = _samples_text(data, where)
    if sha256_text(text) != record["data"]["samples_sha256"]:
        raise RetireError(f"{where}: not the samples the record hashed (data.samples_sha256)")
    return text
