"""The fast CrystalNN fingerprint against matminer's on whole test splits: every row, max |Δ| and the failures.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/fingerprint_exactness.py --dataset mp20 --dataset perov5

The reference is the split's cached (or shipped) reference features, which matminer's featurizers computed
(``harness.metrics.reference``); this computes ``crystalnn_fast.structure_fingerprint_fast`` for every row, serially
on one thread, and compares: max |Δ| over all rows and values, rows above 1e-9, and whether the rows where
matminer failed fail here too. Writes ``results/benchmarks/fingerprint_exactness.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-9


def check(dataset: str, data_dir) -> dict:
    import numpy as np
    from tqdm.auto import tqdm

    from harness.datasets import load_split
    from harness.metrics import crystalnn_fast
    from harness.metrics.reference import reference_features

    split = load_split(dataset, "test", data_dir=data_dir)
    reference, info = reference_features(split)
    crystalnn_fast.FALLBACKS.clear()
    deltas = np.full(len(split), np.nan)
    both_failed, only_fast_failed, only_matminer_failed = 0, [], []
    start = time.perf_counter()
    for i, structure in enumerate(tqdm(split.structures, desc=f"fast fingerprints {dataset} test", mininterval=2)):
        try:
            fast = crystalnn_fast.structure_fingerprint_fast(structure)
            error = None if np.all(np.isfinite(fast)) else "non-finite"
        except Exception as exc:  # noqa: BLE001  (matminer's own failures are part of the comparison)
            fast, error = None, f"{type(exc).__name__}: {exc}"
        matminer_failed = reference.fp_errors[i] is not None
        if error is not None and matminer_failed:
            both_failed += 1
        elif error is not None:
            only_fast_failed.append(split.material_ids[i])
        elif matminer_failed:
            only_matminer_failed.append(split.material_ids[i])
        else:
            deltas[i] = float(np.abs(fast - reference.struct_fp[i]).max())
    seconds = time.perf_counter() - start
    compared = deltas[np.isfinite(deltas)]
    return {
        "dataset": dataset, "split": "test", "split_sha256": split.sha256, "rows": len(split),
        "reference_cache": {k: info.get(k) for k in ("cache", "file", "key")},
        "rows_compared": int(len(compared)), "max_abs_delta": float(compared.max()) if len(compared) else None,
        "rows_above_tolerance": [split.material_ids[i] for i in np.flatnonzero(deltas > TOLERANCE)],
        "both_failed": both_failed, "only_fast_failed": only_fast_failed,
        "only_matminer_failed": only_matminer_failed,
        "fast_seconds": round(seconds, 1), "fast_fallbacks_to_matminer": dict(crystalnn_fast.FALLBACKS),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "fingerprint_exactness.json")
    args = parser.parse_args(argv)

    from common import result_header

    from harness.io import atomic_write_json

    rows = [check(dataset, args.data_dir) for dataset in args.dataset]
    atomic_write_json(args.out, {**result_header("fingerprint_exactness", argv), "tolerance": TOLERANCE, "rows": rows})
    for row in rows:
        print({k: v for k, v in row.items() if k not in ("rows_above_tolerance",)})
    print("wrote", args.out)
    return 0 if all(not r["rows_above_tolerance"] and not r["only_fast_failed"] and not r["only_matminer_failed"]
                    for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
