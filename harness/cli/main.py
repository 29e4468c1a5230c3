"""The ``bench`` command: one module per verb, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness import __version__

VERBS = ("plugins", "datasets", "run", "evaluate", "train", "sample", "leaderboard", "report", "hull", "rescore", "relax", "pack", "retire", "progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="xtalbench: benchmark generative models of crystals.")
    parser.add_argument("--version", action="version", version=f"xtalbench {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"harness.cli.{verb}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness.datasets import DatasetError
    from harness.records import RecordError
    from harness.registry import RegistryError
    from harness.runner import RunError
    from harness.samples import SampleFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (DatasetError, RegistryError, SampleFileError, RecordError, RunError, FileNotFoundError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
