"""`bench leaderboard`: render leaderboards/<dataset>.md from the run records, check they are in step, or
write the same boards as a static web site (``--html DIR``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import fail
from harness.records import RecordError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="render the leaderboards from the run records (or --check them)",
        description="Render leaderboards/<dataset>.md from every record under --results and the papers' "
                    "published figures; with --check, write nothing and exit 1 if a file differs; with --html DIR, "
                    "write the same boards as a static web site (no server needed) into DIR.",
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    parser.add_argument("--out", type=Path, default=Path("leaderboards"), help="output folder (default: leaderboards)")
    parser.add_argument("--check", action="store_true",
                        help="exit non-zero, naming the files and showing a short diff, when the committed "
                             "leaderboards differ from what the records give (what CI runs)")
    parser.add_argument("--html", type=Path, metavar="DIR",
                        help="write the leaderboards as a static web site into DIR (index.html, a sortable "
                             "<dataset>.html each, copies of the rows' records, reports and plots) instead of "
                             "the markdown files; with --check, the check runs too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness import leaderboard

    try:
        if args.html is not None:
            from harness.leaderboard_html import write_site

            written = write_site(args.results, args.html)
            print(f"wrote {len(written)} files to {args.html}; open {args.html / 'index.html'}")
            if not args.check:
                return 0
        if args.check:
            mismatches = leaderboard.check(args.results, args.out)
            for mismatch in mismatches:
                print(f"{mismatch.path}: {mismatch.problem}", file=sys.stderr)
                if mismatch.diff:
                    print(mismatch.diff, file=sys.stderr)
            if mismatches:
                print(f"bench leaderboard --check: {len(mismatches)} file(s) out of step with the records; "
                      f"run `bench leaderboard --results {args.results} --out {args.out}` and commit the result",
                      file=sys.stderr)
                return 1
            print(f"leaderboards in {args.out} are in step with {args.results}")
            return 0
        changed = leaderboard.write_all(args.results, args.out)
    except RecordError as exc:
        return fail(str(exc))
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print(f"leaderboards in {args.out} already up to date")
    return 0
