"""``bench rescore``: carry committed records past a protocol change from what they store, without rerunning them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import add_data_dir


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rescore", help="re-score records' stability (or, with --validity, validity) from what they store",
        description="Stability (default): recompute E_hull, stability and S.U.N. of records from the relaxed CHGNet "
                    "energies their per-sample tables hold (no relaxation is redone), on the shipped Materials "
                    "Project hull or a formation-energy hull file. --validity: recompute compositional validity "
                    "from each sample's formula and the metrics over the valid samples from the per-sample table "
                    "(protocol 1.3). Either carries a record past the protocol changes it applies and says so "
                    "in the record.",
    )
    parser.add_argument("records", nargs="*", type=Path, help="record.json files or run folders")
    parser.add_argument("--all", dest="results_dir", nargs="?", const=Path("results"), type=Path, default=None,
                        help="every record under this folder (default results/) whose next pending protocol change "
                             "is the one this re-score applies")
    parser.add_argument("--validity", dest="rescore", action="store_const", const="validity", default="stability",
                        help="re-score compositional validity and the metrics over the valid samples instead")
    parser.add_argument("--hull", default="mp", help="'mp' (the shipped MP hull) or a formation-energy hull JSON "
                                                     "(stability only)")
    add_data_dir(parser)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def _targets(args) -> list[Path]:
    import json

    from harness.protocol import needs_rescore
    from harness.records import iter_record_paths

    targets = [p.parent if p.name == "record.json" else p for p in args.records]
    if args.results_dir is not None:
        for path in iter_record_paths(args.results_dir):
            record = json.loads(path.read_text())
            has_stability = record["metrics"].get("n_relaxed") is not None
            if needs_rescore(record["protocol_version"], args.rescore, has_stability=has_stability):
                targets.append(path.parent)
    return targets


def run(args: argparse.Namespace) -> int:
    if args.rescore == "validity" and args.hull != "mp":
        print("bench: error: --hull is for the stability re-score; --validity uses no hull", file=sys.stderr)
        return 2
    targets = _targets(args)
    if not targets:
        print(f"nothing to re-score (name records, or --all for every record whose next protocol change is "
              f"{args.rescore})")
        return 0
    return _run_validity(targets, args) if args.rescore == "validity" else _run_stability(targets, args)


def _run_stability(targets: list[Path], args: argparse.Namespace) -> int:
    from harness.stability.hull import HullError
    from harness.stability.mp_reference import load_hull, load_shipped_mp_hull
    from harness.stability.rescore import RescoreError, rescore_run

    try:
        hull = load_shipped_mp_hull() if args.hull == "mp" else load_hull(Path(args.hull))
    except HullError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
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


def _run_validity(targets: list[Path], args: argparse.Namespace) -> int:
    from harness.rescore_validity import rescore_validity
    from harness.stability.rescore import RescoreError

    failed = 0
    for run_dir in targets:
        try:
            record = rescore_validity(run_dir, data_dir=args.data_dir)
        except RescoreError as error:
            print(f"bench: error: {error}", file=sys.stderr)
            failed += 1
            continue
        last = record["details"]["metrics"]["rescored"][-1]
        changes = ", ".join(f"{key} {last['previous_metrics'][key]} -> {record['metrics'][key]}"
                            for key in last["changed"])
        print(f"{run_dir}: protocol {last['from_protocol']} -> {last['to_protocol']}; "
              f"{changes or last['result']}")
    return 2 if failed else 0
