"""`bench report RECORD`: plots of a run's samples against the test split, and report.md beside the record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import add_data_dir, fail
from harness.records import RecordError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write PNG plots and report.md beside a run record",
        description="Plot a run's valid samples against the test split (space groups, density, number of "
                    "elements) and the E_hull of its relaxed subset, and write report.md beside the record.",
    )
    parser.add_argument("record", type=Path, help="a record.json, or the run folder holding it")
    add_data_dir(parser)
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="plot the samples alone, without loading the test split")
    parser.add_argument("--compare", type=Path, action="append", default=None, metavar="RECORD",
                        help="a record of the same samples relaxed by another relaxer, compared sample by sample "
                             "(default: every such record beside this one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness import report
    from harness.datasets import DatasetError
    from harness.records import load_record
    from harness.report_relaxers import relaxer_siblings

    record_path = report.resolve_record_path(args.record)
    try:
        record = load_record(record_path)
    except RecordError as exc:
        return fail(str(exc))
    from harness.tasks import CONDITIONAL, OPTIMISE, record_task

    if record_task(record) in (CONDITIONAL, OPTIMISE):
        from harness.report_conditional import write_conditional_report, write_optimise_report

        result = (write_conditional_report(record_path, args.data_dir) if record_task(record) == CONDITIONAL
                  else write_optimise_report(record_path))
        for path in (result.markdown, *result.plots):
            print(f"wrote {path}")
        for note in result.notes:
            print(f"note: {note}")
        return 0
    reference = None
    if args.reference:
        try:
            reference = report.reference_properties(record["dataset"], data_dir=args.data_dir)
        except DatasetError as exc:
            print(f"bench report: warning: no test split, plotting the samples alone: {exc}", file=sys.stderr)
    hull, why = report.dataset_hull(record, data_dir=args.data_dir)
    if hull is None and record.get("metrics", {}).get("n_relaxed"):
        print(f"bench report: note: no hull-support table: {why}", file=sys.stderr)
    compare = [report.resolve_record_path(p) for p in args.compare] if args.compare else relaxer_siblings(record_path)
    try:
        result = report.write_report(record_path, reference, hull, tuple(compare))
    except (OSError, KeyError) as exc:
        return fail(f"{record_path}: cannot build the report: {exc}")
    for path in (result.markdown, *result.plots):
        print(f"wrote {path}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
