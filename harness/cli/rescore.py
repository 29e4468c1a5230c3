"""``bench rescore``: re-score the stability of committed records on the current protocol's hull."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import add_data_dir


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rescore", help="re-score records' stability on the protocol's hull from their stored relaxed energies",
        description="Recompute E_hull, stability and S.U.N. of records from the relaxed CHGNet energies their "
                    "per-sample tables hold (no relaxation is redone), on the shipped Materials Project hull or "
                    "a formation-energy hull file, and rewrite them as the current protocol version.",
    )
    parser.add_argument("records", nargs="*", type=Path, help="record.json files or run folders")
    parser.add_argument("--all", dest="results_dir", nargs="?", const=Path("results"), type=Path, default=None,
                        help="every record with stability under this folder (default results/) on an older protocol")
    parser.add_argument("--hull", default="mp", help="'mp' (the shipped MP hull) or a formation-energy hull JSON")
    add_data_dir(parser)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def _targets(args) -> list[Path]:
    import json

    from harness.protocol import PROTOCOL_VERSION
    from harness.records import iter_record_paths

    targets = [p.parent if p.name == "record.json" else p for p in args.records]
    if args.results_dir is not None:
        for path in iter_record_paths(args.results_dir):
            record = json.loads(path.read_text())
            if record["metrics"].get("n_relaxed") is not None and record["protocol_version"] != PROTOCOL_VERSION:
                targets.append(path.parent)
    return targets


def run(args: argparse.Namespace) -> int:
    from harness.stability.hull import HullError
    from harness.stability.mp_reference import load_hull, load_shipped_mp_hull
    from harness.stability.rescore import RescoreError, rescore_run

    try:
        hull = load_shipped_mp_hull() if args.hull == "mp" else load_hull(Path(args.hull))
    except HullError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    targets = _targets(args)
    if not targets:
        print("nothing to re-score (name records, or --all for every record on an older protocol)")
        return 0
    failed = 0
    for run_dir in targets:
        try:
            record = rescore_run(run_dir, hull=hull, data_dir=args.data_dir, progress=args.progress)
        except RescoreError as error:
            print(f"bench: error: {error}", file=sys.stderr)
            failed += 1
            continue
        m, last = record["metrics"], record["details"]["stability"]["rescored"][-1]
        before = last["previous_metrics"]
        print(f"{run_dir}: stable {before['stable_rate']} -> {m['stable_rate']:.3f}, "
              f"SUN {before['sun_rate']} -> {m['sun_rate']:.3f} (protocol {record['protocol_version']}, "
              f"hull {hull.name})")
    return 2 if failed else 0
