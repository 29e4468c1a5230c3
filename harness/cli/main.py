"""The ``bench`` command: one module per verb, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from harness import __version__
from harness.signals import handling

VERBS = ("plugins", "datasets", "run", "evaluate", "train", "sample", "leaderboard", "report", "hull", "rescore", "relax", "pack", "retire", "progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="xtalbench: benchmark generative models of crystals.")
    parser.add_argument("--version", action="version", version=f"xtalbench {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"harness.cli.{verb}").register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``), raised in the main thread as Ctrl-C's KeyboardInterrupt is: a run then ends the same
    way, its invocation's cost line written and its workers stopped, and the same command resumes it."""

    exit_code = 128 + signal.SIGTERM


def _terminate(signum, frame):
    raise Terminated(signal.Signals(signum).name)


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
        with handling((signal.SIGTERM,), _terminate):
            return int(args.func(args) or 0)
    except (DatasetError, RegistryError, SampleFileError, RecordError, RunError, FileNotFoundError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        name = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"bench: {name}; rerun the same command to resume", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
