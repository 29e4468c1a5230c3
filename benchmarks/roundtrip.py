"""Round trip structure → asymmetric representation → structure over a split, matched with StructureMatcher.

    python benchmarks/roundtrip.py --dataset perov5 --split test [--limit N --seed S]

Writes ``results/benchmarks/roundtrip_<dataset>_<split>.json``: the match rate and every failure with its reason.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def roundtrip_one(structure, matcher):
    """(matched, reason, tolerance, space_group) for one structure; the reason is empty when it matched."""
    from plugins._asymmetric import RepresentationError, decode, encode

    try:
        crystal = encode(structure)
    except RepresentationError as exc:
        return False, f"encode: {exc}", None, None
    try:
        rebuilt = decode(crystal)
    except Exception as exc:  # any failure to rebuild is a round-trip failure worth reporting
        return False, f"decode: {type(exc).__name__}: {exc}", crystal.tolerance, crystal.space_group
    if rebuilt.composition.reduced_composition != structure.composition.reduced_composition:
        return False, "composition differs", crystal.tolerance, crystal.space_group
    if not matcher.fit(structure, rebuilt):
        return False, "StructureMatcher: no match", crystal.tolerance, crystal.space_group
    return True, "", crystal.tolerance, crystal.space_group


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="a seeded random subset of this size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    from common import result_header
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from harness.datasets import load_split
    from harness.io import atomic_write_json
    from plugins._asymmetric import CODE_VERSION, DEFAULT_TOLERANCES

    split = load_split(args.dataset, args.split)
    indices = np.arange(len(split))
    if args.limit is not None and args.limit < len(split):
        indices = np.sort(np.random.default_rng(args.seed).choice(len(split), args.limit, replace=False))
    matcher = StructureMatcher()  # pymatgen defaults, as the protocol's matching
    start = time.perf_counter()
    matched, failures, tolerances = 0, [], collections.Counter()
    for count, index in enumerate(indices, 1):
        ok, reason, tol, sg = roundtrip_one(split.structures[index], matcher)
        matched += ok
        tolerances[str(tol)] += 1
        if not ok:
            failures.append({"index": int(index), "material_id": split.material_ids[index], "space_group": sg,
                             "tolerance": tol, "reason": reason})
        if count % 500 == 0:
            print(f"{count}/{len(indices)} matched {matched}", flush=True)
    wall = time.perf_counter() - start
    reasons = collections.Counter(f["reason"].split(":")[0] for f in failures)
    record = {
        **result_header("roundtrip", argv),
        "dataset": args.dataset,
        "split": args.split,
        "split_sha256": split.sha256,
        "subset": None if args.limit is None else {"size": int(len(indices)), "seed": args.seed},
        "n": int(len(indices)),
        "matched": int(matched),
        "match_rate": matched / len(indices),
        "failure_reasons": dict(reasons),
        "failures": failures,
        "tolerances_used": dict(tolerances),
        "tolerances_tried": list(DEFAULT_TOLERANCES),
        "matcher": "pymatgen StructureMatcher() defaults",
        "representation_code_version": CODE_VERSION,
        "wall_seconds": round(wall, 1),
        "seconds_per_structure": round(wall / len(indices), 4),
    }
    out = args.out or REPO / "results" / "benchmarks" / f"roundtrip_{args.dataset}_{args.split}.json"
    atomic_write_json(out, record)
    print(f"{args.dataset}/{args.split}: {matched}/{len(indices)} = {matched / len(indices):.4%} in {wall:.0f}s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
