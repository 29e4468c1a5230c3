"""A record's COV-R and COV-P recomputed at other cutoffs, so that a paper using its own cutoffs can be compared.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/coverage_cutoffs.py \
        results/perov5/symat/full-seed0-67ee21885f --cutoffs 0.8,6 \
        --source "SyMat paper, Table 1 (Perov-5): structure 0.8, composition 6"

The protocol fixes COV's cutoffs per dataset (docs/protocol.md); some papers used others (SyMat: Perov-5 0.8/6, MP-20
0.6/12, against the protocol's 0.2/4 and 0.4/10). Coverage at a looser cutoff is not comparable with the record's
figure, so this recomputes both from the fingerprints the evaluation saved (``RUN_DIR/fingerprints``) and the
cached test-split features, with the harness's own ``coverage()``: nearest structure and composition fingerprints
found separately, both cutoffs ``<=``, COV-P over every requested sample. At the record's cutoffs the figures must
equal the record's, or the script stops. Writes ``results/benchmarks/coverage_cutoffs_<dataset>_<plugin>-<tier>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cutoff_pair(text: str) -> tuple[float, float]:
    try:
        struct, comp = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected STRUCT,COMP, e.g. 0.8,6") from None
    if struct < 0 or comp < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: cutoffs are distances, not negative")
    return struct, comp


def coverage_table(gen_s, gen_c, fp_ok, ref_s, ref_c, ref_ok, pairs) -> list[dict]:
    """COV-R and COV-P at each (structure, composition) cutoff pair, over every requested sample."""
    from harness.metrics.coverage import coverage

    fp_ok = np.asarray(fp_ok, bool)
    rows = []
    for struct_cut, comp_cut in pairs:
        recall, precision = coverage(
            np.asarray(gen_s)[fp_ok],
            np.asarray(gen_c)[fp_ok],
            ref_s,
            ref_c,
            struct_cutoff=struct_cut,
            comp_cutoff=comp_cut,
            n_generated=len(fp_ok),
            ref_ok=ref_ok,
        )
        rows.append({"struct_cutoff": struct_cut, "comp_cutoff": comp_cut, "cov_recall": recall,
                     "cov_precision": precision})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--cutoffs", type=cutoff_pair, nargs="+", required=True, metavar="STRUCT,COMP")
    parser.add_argument("--source", default=None, help="where the other cutoffs come from")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from common import record_header
    from sampling_spread import saved_fingerprints

    from harness.datasets import load_split
    from harness.io import atomic_write_json
    from harness.metrics.reference import reference_features

    run_dir = args.run_dir.resolve()
    record_path = run_dir / "record.json"
    if not record_path.exists():
        raise SystemExit(f"{record_path}: no record; evaluate the run first")
    record = json.loads(record_path.read_text())
    dataset = record["dataset"]
    cut = record["details"]["metrics"]["coverage"]
    protocol_pair = (cut["struct_cutoff"], cut["comp_cutoff"])
    gen_s, gen_c, fp_ok = saved_fingerprints(run_dir, record["n_samples"])
    reference, _ = reference_features(load_split(dataset, "test"))
    pairs = [protocol_pair] + [p for p in args.cutoffs if p != protocol_pair]
    rows = coverage_table(gen_s, gen_c, fp_ok, reference.struct_fp, reference.comp_fp, reference.fp_ok, pairs)
    for key in ("cov_recall", "cov_precision"):  # else this measures something other than the record
        if abs(rows[0][key] - record["metrics"][key]) > 1e-9:
            raise SystemExit(f"recomputed {key} {rows[0][key]} at the record's cutoffs differs from the record's "
                             f"{record['metrics'][key]}")
    rows[0]["protocol"] = True
    out = {
        **record_header("coverage_cutoffs", argv, run_dir, record, REPO),
        "description": "a record's coverage at the protocol's and at other cutoffs",
        "plugin": record["plugin"]["name"],
        "n_samples": record["n_samples"],
        "n_fingerprinted": int(np.count_nonzero(fp_ok)),
        "n_reference": len(reference.fp_ok),
        "source": args.source,
        "coverage": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
    }
    name = f"coverage_cutoffs_{dataset}_{record['plugin']['name']}-{record['tier']}.json"
    path = args.out or REPO / "results" / "benchmarks" / name
    atomic_write_json(path, out)
    print(json.dumps(out["coverage"], indent=1))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
