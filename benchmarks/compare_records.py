"""Two records' metrics side by side: which are equal, which differ (e.g. a re-evaluation against the committed record).

    python benchmarks/compare_records.py results/mp20/external-diffcsp/custom-a37ae76e0023-seed0 /tmp/run \\
        --out results/benchmarks/compare_diffcsp_nostability.json

Compares every metric both records computed (a key that is null in either is listed as not compared), exactly, as
the records store them, and writes both records' timings beside the verdict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import result_header  # benchmarks/ is the script's folder, first on sys.path

from harness.io import atomic_write_json
from harness.records import load_record, resolve_record_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a record.json or run folder (e.g. the committed one)")
    parser.add_argument("other", type=Path, help="the record to compare with it")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    a, b = (load_record(resolve_record_path(p)) for p in (args.reference, args.other))
    compared = sorted(k for k in a["metrics"] if a["metrics"][k] is not None and b["metrics"].get(k) is not None
                      and not k.startswith("seconds_"))
    differing = {k: [a["metrics"][k], b["metrics"][k]] for k in compared if a["metrics"][k] != b["metrics"][k]}
    result = {
        **result_header("compare_records", argv),
        "reference": {"run_id": a["run_id"], "samples_sha256": a["data"]["samples_sha256"], "timings": a["timings"]},
        "other": {"run_id": b["run_id"], "samples_sha256": b["data"]["samples_sha256"], "timings": b["timings"]},
        "same_samples": a["data"]["samples_sha256"] == b["data"]["samples_sha256"],
        "compared": compared,
        "not_compared": sorted(set(a["metrics"]) - set(compared)),
        "differing": differing,
        "identical": not differing,
    }
    print(json.dumps({k: result[k] for k in ("same_samples", "compared", "differing", "identical")}, indent=1))
    if args.out:
        atomic_write_json(args.out, result)
        print(args.out)
    return 0 if not differing else 1


if __name__ == "__main__":
    raise SystemExit(main())
