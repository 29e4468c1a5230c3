"""``bench pack RUN_DIR``: an unfinished run's relaxations in one committable file, for a later session to resume."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pack", help="pack an unfinished run's relaxations into one file a later session resumes from",
        description="Write every finished relaxation under RUN_DIR/stability into RUN_DIR/relaxations.jsonl.gz "
                    "(compact: energies, convergence, steps and relaxed structures to 1e-6; merged with what the "
                    "file held). git tracks that file but not stability/, so commit it; the same `bench run` "
                    "command on another machine or in a later session writes the results back and relaxes only "
                    "the rest. A carried result is used only for the structure it relaxed.",
    )
    parser.add_argument("run_dir", type=Path, help="a run folder (holding run.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.common import fail
    from harness.stability.carry import ARCHIVE_NAME, pack

    if not (args.run_dir / "run.json").exists():
        return fail(f"{args.run_dir} is not a run folder (no run.json)")
    try:
        total, new = pack(args.run_dir)
    except ValueError as exc:
        return fail(str(exc))
    print(f"{args.run_dir / ARCHIVE_NAME}: {total} relaxations ({new} new); commit it to carry them")
    return 0
