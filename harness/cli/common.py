"""Arguments and error handling that several verbs share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.evaluation import EvaluationRequest


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="dataset folder (default: $XTALBENCH_DATA, else the per-user data dir)")


def add_evaluation_args(parser: argparse.ArgumentParser, stability_default: bool) -> None:
    add_data_dir(parser)
    parser.add_argument("--eval-seed", type=int, default=0, help="seed of the Wasserstein and relaxation subsets")
    parser.add_argument("--train-split", default="train",
                        help="split(s) novelty is judged against, joined by '+' (e.g. val+train_partial); "
                             "a run defaults to the splits its model was trained on")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--stability", dest="stability", action="store_true", default=stability_default,
                       help="relax a seeded subset (CHGNet unless --relaxer) and compute S.U.N." + (" (default)" if stability_default else ""))
    group.add_argument("--no-stability", dest="stability", action="store_false", help="skip stability and S.U.N.")
    parser.add_argument("--hull", default=None,
                        help="reference hull for E_hull: 'mp' (default: the shipped Materials Project hull), "
                             "'dataset' (the dataset's own structures scored by CHGNet), or a hull file "
                             "(xtalbench JSON, or Matbench Discovery's MP phase-diagram pickle)")
    parser.add_argument("--hull-sha256", type=_sha256_arg, default=None,
                        help="sha256 the --hull file must have (pins a release xtalbench does not know; "
                             "else $XTALBENCH_HULL_SHA256)")
    parser.add_argument("--relaxer", default="chgnet",
                        help="who relaxes the stability subset: 'chgnet' (the protocol's, default) or another "
                             "registered relaxer ('bench plugins' lists them, e.g. sevennet); records relaxed by "
                             "another are shown apart from protocol rows")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--executor", choices=("process", "dask"), default=None,
                        help="where the metrics' per-structure work runs: 'process' (default: a local pool) or "
                             "'dask' (a local Dask cluster of --workers processes; needs xtalbench[dask])")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="an existing Dask scheduler (tcp://host:port, e.g. a dask-jobqueue cluster's) to "
                             "run on; implies --executor dask")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_threads(parser)


def _sha256_arg(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"not a sha256 (64 hex digits): {text!r}")
    return value


def evaluation_request(args) -> EvaluationRequest:
    """The evaluation the shared options ask for; the relaxed subset's size is the verb's (a tier, or --n-relax)."""
    if getattr(args, "hull_sha256", None) and args.hull in (None, "mp", "dataset"):
        raise SystemExit(fail("--hull-sha256 pins the file given with --hull; there is none"))
    scheduler = getattr(args, "scheduler", None)
    if scheduler and getattr(args, "executor", None) == "process":
        raise SystemExit(fail("--scheduler is a Dask scheduler's address; it cannot go with --executor process"))
    return EvaluationRequest(
        dataset=args.dataset, eval_seed=args.eval_seed, stability=args.stability,
        novelty_split=args.train_split, hull=args.hull, hull_sha256=getattr(args, "hull_sha256", None),
        data_dir=args.data_dir, workers=args.workers, progress=args.progress,
        executor="dask" if scheduler else (getattr(args, "executor", None) or "process"), scheduler=scheduler,
        relaxer=_known_relaxer(getattr(args, "relaxer", None) or "chgnet"),
    )


def _known_relaxer(name: str) -> str:
    from harness.registry import RegistryError, get_registry

    try:
        get_registry().relaxer(name)
    except RegistryError as exc:
        raise SystemExit(fail(str(exc))) from None
    return name


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in this process (default: half the cores, at most 4); "
                             "more threads than free cores makes sampling and relaxation many times slower")


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads once per process (the CLI's choice, never the library's)."""
    import os

    import torch

    count = threads or max(1, min(4, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(count)
    return count


def fail(message: str, code: int = 2) -> int:
    print(f"bench: error: {message}", file=sys.stderr)
    return code
