"""``bench pack RUN_DIR``: an unfinished run's relaxations and generated batches in committable files, for a later
session to resume."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pack", help="pack an unfinished run's relaxations and generated batches into files a later session "
                     "resumes from",
        description="Write every finished relaxation under RUN_DIR/stability into RUN_DIR/relaxations.jsonl.gz "
                    "(compact: energies, convergence, steps and relaxed structures to 1e-6; merged with what the "
                    "file held), and every finished generation batch (RUN_DIR/**/batches/) into "
                    "RUN_DIR/batches.jsonl.gz (the same samples, bit for bit). git tracks those files but not stability/ or batches/, so commit them; "
                    "the same `bench run` command on another machine or in a later session writes them back, "
                    "samples only the missing batches and relaxes only the rest. A carried result is used only "
                    "for the structure it relaxed. A finished run (record.json written) needs no pack.",
    )
    parser.add_argument("run_dir", type=Path, help="a run folder (holding run.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.common import fail
    from harness.records import RECORD_NAME
    from harness.stability.carry import ARCHIVE_NAME, BATCHES_NAME, pack, pack_batches

    if not (args.run_dir / "run.json").exists():
        return fail(f"{args.run_dir} is not a run folder (no run.json)")
    if (args.run_dir / RECORD_NAME).exists():
        return fail(f"{args.run_dir} is finished ({RECORD_NAME} written): its record's files carry it already")
    try:
        total, new = pack(args.run_dir)
        batches, new_batches = pack_batches(args.run_dir)
    except ValueError as exc:
        return fail(str(exc))
    print(f"{args.run_dir / ARCHIVE_NAME}: {total} relaxations ({new} new); commit it to carry them")
    if batches:
        print(f"{args.run_dir / BATCHES_NAME}: {batches} generated batches ({new_batches} new); commit it too")
    return 0
