"""``bench relax RECORD --relaxer NAME``: a record's stability subset relaxed again by another relaxer."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import add_data_dir, add_threads


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "relax", help="relax a record's stability subset again with another relaxer (a sibling record)",
        description="Relax the seeded stability subset of a protocol record again with another registered relaxer "
                    "(e.g. sevennet) and write the sibling record <run_id>-<relaxer> beside it: the same samples, "
                    "their other metrics copied, stability and S.U.N. anew. Leaderboards show it apart from "
                    "protocol rows; `bench report` on the source record compares the two sample by sample.",
    )
    parser.add_argument("record", type=Path, help="a record.json, or the run folder holding it")
    parser.add_argument("--relaxer", required=True, help="a registered relaxer ('bench plugins' lists them)")
    parser.add_argument("--workers", type=int, default=None, help="relaxation processes (default: one)")
    add_data_dir(parser)
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_threads(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.common import configure_threads, fail
    from harness.relax_again import RelaxAgainError, relax_again

    configure_threads(args.threads)
    run_dir = args.record.parent if args.record.name == "record.json" else args.record
    try:
        record = relax_again(run_dir, args.relaxer, workers=args.workers, data_dir=args.data_dir,
                             progress=args.progress)
    except RelaxAgainError as exc:
        return fail(str(exc))
    from harness.cli.run import _print_summary

    _print_summary(record)
    print(record)
    return 0
