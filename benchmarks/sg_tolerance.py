"""Space groups at the tolerance the asymmetric representation encodes with, against the protocol's symprec.

    python benchmarks/sg_tolerance.py --dataset perov5 --run results/perov5/symmbfn/full-seed0-a2702b3fe6

SymmBFN and SymmCD draw a sample's space group from their training set as the representation encoded it (spglib
through pyxtal, first tolerance that works: 0.01), build the crystal in that group, and the protocol then detects
the sample's group at symprec 0.1 and compares with the test split at 0.1 (``sg_jsd``; SymmCD's variant takes the
test split at 0.01). A structure whose atoms lie within 0.1 of a more symmetric arrangement is detected in a
supergroup, so how far the sampled prior sits from the test split at 0.1, and how precisely a model places atoms,
both enter ``sg_jsd``. This script puts the histograms side by side and the Jensen-Shannon distances between them.

Writes ``results/benchmarks/sg_tolerance_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TOP = 12  # groups listed per distribution


def fractions(numbers) -> dict[str, float]:
    """The ``TOP`` most common groups and their fractions (keys are group numbers as strings, for JSON)."""
    counts = Counter(int(n) for n in numbers)
    total = sum(counts.values())
    return {str(g): round(c / total, 4) for g, c in counts.most_common(TOP)}


def run_samples(run_dir: Path) -> tuple[list[int], dict]:
    """Space groups (symprec 0.1) of a run's valid samples, from its per-sample table, and the record's figures."""
    import pandas as pd

    record = json.loads((run_dir / "record.json").read_text())
    table = pd.read_parquet(run_dir / "per_sample.parquet")
    valid = table[table["valid"].eq(True)]  # a missing flag is not valid
    metrics = record["metrics"]
    return valid["spacegroup"].astype(int).tolist(), {
        "run": str(run_dir.relative_to(REPO)) if run_dir.is_relative_to(REPO) else str(run_dir),
        "plugin": record["plugin"]["name"],
        "n_valid": len(valid),
        "record_sg_jsd": metrics.get("sg_jsd"),
        "record_sg_jsd_symmcd": metrics.get("sg_jsd_symmcd"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--train-split", default=None,
                        help="split(s) the models trained on, joined by '+' (default: the runs' model_trained_on)")
    parser.add_argument("--run", type=Path, action="append", default=[], help="a run folder (repeatable)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from common import result_header

    from harness.datasets import load_split
    from harness.io import atomic_write_json
    from harness.metrics.reference import reference_features
    from harness.metrics.symmetry import sg_jsd, sg_jsd_symmcd
    from harness.protocol import SG_SYMPREC, SG_SYMPREC_TEST_SYMMCD
    from plugins._asymmetric import convert_split

    run_dirs = [run_dir.resolve() for run_dir in args.run]
    trained_on = {json.loads((d / "record.json").read_text())["splits"]["model_trained_on"] for d in run_dirs}
    if args.train_split is None and len(trained_on) != 1:
        parser.error(f"give --train-split: the runs name {sorted(map(str, trained_on)) or 'no'} training split(s)")
    train_split = args.train_split or trained_on.pop()
    prior: list[int] = []
    tolerances: Counter = Counter()
    for name in train_split.split("+"):
        converted = convert_split(load_split(args.dataset, name))
        for crystal in converted.valid():
            prior.append(int(crystal.space_group))
            tolerances[str(crystal.tolerance)] += 1
    test, _ = reference_features(load_split(args.dataset, "test"))
    test_protocol = [int(n) for n in test.spacegroup]
    test_fine = [int(n) for n in test.spacegroup_symmcd]

    distances = {
        "prior_vs_test_protocol": sg_jsd(prior, test_protocol),
        "prior_vs_test_fine": sg_jsd(prior, test_fine),
        "test_fine_vs_test_protocol": sg_jsd(test_fine, test_protocol),
    }
    runs = []
    for run_dir in run_dirs:
        numbers, info = run_samples(run_dir)
        info["space_groups"] = fractions(numbers)
        info["sg_jsd_recomputed"] = sg_jsd(numbers, test_protocol)
        info["sg_jsd_symmcd_recomputed"] = sg_jsd_symmcd(numbers, test_fine)
        info["samples_vs_prior"] = sg_jsd(numbers, prior)
        runs.append(info)

    result = {
        **result_header("sg_tolerance", argv),
        "description": "space groups at the representation's tolerance vs the protocol's symprec",
        "dataset": args.dataset,
        "train_split": train_split,
        "representation_tolerances_used": dict(tolerances),
        "protocol_symprec": SG_SYMPREC,
        "symmcd_test_symprec": SG_SYMPREC_TEST_SYMMCD,
        "distributions": {
            "prior (training set as encoded)": {"n": len(prior), "space_groups": fractions(prior)},
            f"test at symprec {SG_SYMPREC}": {"n": len(test_protocol), "space_groups": fractions(test_protocol)},
            f"test at symprec {SG_SYMPREC_TEST_SYMMCD}": {"n": len(test_fine), "space_groups": fractions(test_fine)},
        },
        "jensen_shannon_distances": {k: None if v is None else round(v, 4) for k, v in distances.items()},
        "runs": runs,
    }
    out = args.out or REPO / "results" / "benchmarks" / f"sg_tolerance_{args.dataset}.json"
    atomic_write_json(out, result)
    print(json.dumps(result["jensen_shannon_distances"]))
    for info in runs:
        print(info["plugin"], "sg_jsd", info["sg_jsd_recomputed"], "record", info["record_sg_jsd"],
              "vs prior", info["samples_vs_prior"])
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
