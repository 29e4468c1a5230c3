"""``bench retire RUN_DIR...``: a superseded record's samples file out of the tree, read back from git history."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "retire", help="remove superseded records' samples files from the tree (git history keeps them)",
        description="For each record: check that its samples file is committed unchanged and is the one the record "
                    "hashed, name that commit in the record (files.retired_samples) and delete the file; commit "
                    "the result. Every reader of the record's samples (bench relax, bench rescore, the "
                    "benchmarks) then reads them from that commit, sha256 checked. Refused for a record of the "
                    "checkpoint its plugin ships now: the current model's samples stay in the tree.",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders holding record.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.common import fail
    from harness.retire import RetireError, retire

    failed = 0
    for run_dir in args.run_dirs:
        try:
            retired = retire(run_dir)
        except RetireError as exc:
            failed += 1
            fail(str(exc))
            continue
        print(f"{run_dir}: {retired['file']} retired; read back from {retired['commit'][:10]}:{retired['path']}")
    return 2 if failed else 0
