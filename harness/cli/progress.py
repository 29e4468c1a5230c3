"""``bench progress RUN_DIR...``: how far a run has got, read from the files it writes (the run is not disturbed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "progress", help="show how far runs have got (generation batches, relaxations, record) from their files",
        description="For each run folder: generation batches and relaxations finished against what the run asks "
                    "for (relaxations carried by `bench pack` included), how many finished in the last --window "
                    "minutes and the time left at that rate, whether the record is written, and what the run's "
                    "invocations cost (invocations.jsonl), which one is running now and which were killed. Reads "
                    "files only, "
                    "so it is safe beside a running `bench run` (e.g. one started with --no-progress in the "
                    "background).",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders (holding run.json)")
    parser.add_argument("--window", type=float, default=20.0, metavar="MINUTES",
                        help="the rate is measured over this many minutes (default 20)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.common import fail
    from harness.progress import ProgressError, format_progress, progress

    if args.window <= 0:
        return fail(f"--window must be positive, not {args.window:g}")
    failed = 0
    for run_dir in args.run_dirs:
        try:
            print(format_progress(progress(run_dir, window_s=args.window * 60)))
        except ProgressError as exc:
            failed += 1
            fail(str(exc))
    return 2 if failed else 0
