"""`bench hull`: build or show the cached offline reference hull of a dataset."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.stability.hull import Hull


def register(subparsers) -> None:
    parser = subparsers.add_parser("hull", help="build or show a dataset's reference convex hull (CHGNet)")
    actions = parser.add_subparsers(dest="hull_action", required=True)
    build = actions.add_parser("build", help="score the dataset's structures and elements; cache the hull")
    show = actions.add_parser("show", help="print what is cached for a dataset")
    export = actions.add_parser(
        "export",
        help="write the cached hull and its relaxed reference energies as package data (harness/data/hulls/), "
        "so that a fresh machine skips the CHGNet scoring and relaxations",
    )
    export.add_argument("--out-dir", type=Path, default=None, help="default: harness/data/hulls/")
    for sub in (build, show, export):
        sub.add_argument("--dataset", default=None, help="the dataset whose own hull (--hull dataset) is meant")
        sub.add_argument("--hull", choices=("dataset", "mp"), default="dataset",
                         help="'dataset' (its structures scored by CHGNet) or 'mp' (the Materials Project "
                              "formation-energy hull, the protocol's default)")
        sub.add_argument("--data-dir", default=None)
    build.add_argument("--reference-dir", default=None,
                       help="--hull mp: folder of the MP source files (default $XTALBENCH_REFERENCE, else "
                            "reference/mp beside the data directory)")
    build.add_argument("--from-matminer", action="store_true",
                       help="--hull mp: take the formation energies from matminer's download (needs network)")
    build.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="also write a small JSON summary here (default results/hulls/<dataset>.json)",
    )
    build.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.set_defaults(func=run)


def summary(hull: Hull, seconds: float | None = None) -> dict:
    """Size, hash, settings and timings of a hull, without its energies."""
    info = dict(hull.info)
    failures = info.pop("scoring_failures", [])
    out = {
        "name": hull.name,
        "source": hull.source,
        "sha256": hull.sha256,
        "size": hull.size,
        "n_elements": len(hull.elements),
        "n_scoring_failures": len(failures),
        "elements": hull.elements,
        **info,
    }
    out["elements_without_ase_reference_state"] = _no_ase_state(hull.elements)
    if seconds is not None:
        out["wall_seconds_this_call"] = round(seconds, 1)
    return out


def _no_ase_state(symbols) -> list[str]:
    """Elements whose reference came only from fcc/bcc/hcp/dimer guesses: ASE has no ground state for them."""
    from ase.build import bulk

    out = []
    for symbol in sorted(symbols):
        try:
            bulk(symbol)
        except Exception:
            out.append(symbol)
    return out


def _print(summary_obj: dict) -> None:
    print(f"hull     {summary_obj['name']}")
    print(f"source   {summary_obj['source']}")
    print(f"size     {summary_obj['size']} entries ({summary_obj['n_elements']} elemental references)")
    print(f"sha256   {summary_obj['sha256']}")
    if "seconds_total" in summary_obj:
        print(f"built in {summary_obj['seconds_total']} s (scoring {summary_obj.get('seconds_scoring')} s)")
    missing = summary_obj.get("elements_without_reference") or []
    print(f"elements without reference: {', '.join(missing) if missing else 'none'}")
    guessed = summary_obj.get("elements_without_ase_reference_state") or []
    if guessed:
        print(
            f"elements referenced by simple prototypes only (ground state may be missed): {', '.join(guessed)}"
        )


def _mp(args: argparse.Namespace) -> int:
    """``bench hull build|show|export --hull mp``."""
    from harness import paths
    from harness.io import atomic_write_json
    from harness.stability.hull import HullError
    from harness.stability.mp_reference import (
        MP_HULL_SHA256,
        build_mp_hull,
        load_shipped_mp_hull,
        matminer_rows,
        shipped_mp_hull_path,
    )
    from harness.stability.shipped import write_gzip_json

    cached = paths.cache_dir("hulls") / "mp-eform-built.json"
    try:
        if args.hull_action == "build":
            start = time.perf_counter()
            rows = matminer_rows() if args.from_matminer else None
            hull = build_mp_hull(paths.reference_dir(args.reference_dir), data_dir=args.data_dir, e_form_rows=rows)
            atomic_write_json(cached, hull.to_json())
            same = "the same as" if hull.sha256 == MP_HULL_SHA256 else "DIFFERENT from"
            print(f"built {hull.name}: {hull.size} entries in {time.perf_counter() - start:.1f} s; content hash "
                  f"{hull.sha256} is {same} the shipped hull's ({MP_HULL_SHA256})")
            print(f"cached   {cached}")
            return 0
        if args.hull_action == "export":
            if not cached.exists():
                print(f"nothing built at {cached}; run `bench hull build --hull mp` first")
                return 1
            obj = json.loads(cached.read_text())
            path = write_gzip_json(shipped_mp_hull_path(args.out_dir), obj)
            print(f"hull     {path} (sha256 {obj['sha256']}); pin it as MP_HULL_SHA256 if it changed")
            return 0
        hull = load_shipped_mp_hull()
    except HullError as error:
        print(f"bench: error: {error}")
        return 2
    print(f"file     {shipped_mp_hull_path()}")
    _print({**summary(hull), "elements_without_ase_reference_state": []})
    print(f"convention {hull.info.get('convention')}")
    return 0


def run(args: argparse.Namespace) -> int:
    from harness import paths
    from harness.stability.hull import ReferenceHull
    from harness.stability.ondemand import CACHE_SUBDIR

    if args.hull == "mp":
        return _mp(args)
    if not args.dataset:
        print("bench: error: --dataset is required with --hull dataset")
        return 2

    if args.hull_action == "show":
        found = sorted(paths.cache_dir("hulls").glob(f"{args.dataset}-*.json"))
        if not found:
            print(f"no cached hull for {args.dataset}; run `bench hull build --dataset {args.dataset}`")
            return 1
        for path in found:
            hull = ReferenceHull.from_json(json.loads(path.read_text()))
            print(f"file     {path}")
            _print(summary(hull))
            relaxed = paths.cache_dir("hulls") / CACHE_SUBDIR
            n_relaxed = sum(1 for _ in relaxed.glob(f"{hull.sha256[:16]}-*/*.json"))
            print(f"entries relaxed on demand so far (cached): {n_relaxed}")
        return 0

    if args.hull_action == "export":
        return _export(args)

    import torch

    from harness.io import atomic_write_json
    from harness.registry import get_registry
    from harness.stability.reference import load_or_build_dataset_hull

    card = get_registry().dataset(args.dataset)
    torch.set_num_threads(max(1, args.threads))
    start = time.perf_counter()
    hull = load_or_build_dataset_hull(card, data_dir=args.data_dir, progress=True)
    out = summary(hull, time.perf_counter() - start)
    _print(out)
    target = args.summary or Path("results") / "hulls" / f"{args.dataset}.json"
    atomic_write_json(target, out)
    print(f"summary  {target}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from harness.registry import get_registry
    from harness.stability.ondemand import RelaxedReferenceCache
    from harness.stability.reference import load_or_build_dataset_hull
    from harness.stability.relax import DEFAULT_SETTINGS
    from harness.stability.shipped import SHIPPED_DIR, export_relaxed, hull_file, write_gzip_json

    try:
        hull = load_or_build_dataset_hull(get_registry().dataset(args.dataset), data_dir=args.data_dir, build=False)
    except FileNotFoundError as error:
        print(error)
        return 1
    directory = args.out_dir or SHIPPED_DIR
    path = write_gzip_json(hull_file(args.dataset, hull.info["cache_key"], directory), hull.to_json())
    print(f"hull     {path} ({hull.size} entries, sha256 {hull.sha256[:16]}…)")
    relaxed, n = export_relaxed(RelaxedReferenceCache(hull.sha256, DEFAULT_SETTINGS), directory)
    print(f"relaxed  {relaxed} ({n} entries)")
    return 0
