"""Speed and agreement of the fast CrystalNN structure fingerprint against matminer's, on seeded dataset rows.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/fingerprint_speed.py --dataset mp20 --split val --n 100

Both paths run serially on the same structures, matminer's (``harness.metrics.fingerprints.structure_fingerprint_matminer``)
first, then ``harness.metrics.crystalnn_fast.structure_fingerprint_fast``; one warm-up call each is made beforehand
so imports and preset loading are not timed. Writes ``results/benchmarks/fingerprint_speed_<dataset>_<split>.json``.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    from common import result_header

    from harness.datasets import load_split
    from harness.io import atomic_write_json
    from harness.metrics import crystalnn_fast
    from harness.metrics.fingerprints import structure_fingerprint_matminer as structure_fingerprint

    split = load_split(args.dataset, args.split, data_dir=args.data_dir)
    rows = np.random.default_rng(args.seed).choice(len(split), min(args.n, len(split)), replace=False)
    structures = [split.structures[i] for i in rows]
    structure_fingerprint(structures[0])
    crystalnn_fast.structure_fingerprint_fast(structures[0])
    crystalnn_fast.FALLBACKS.clear()

    def timed(function):
        t0 = time.perf_counter()
        values = np.array([function(s) for s in structures])
        return values, time.perf_counter() - t0

    reference, seconds_matminer = timed(structure_fingerprint)
    fast, seconds_fast = timed(crystalnn_fast.structure_fingerprint_fast)
    delta = np.abs(reference - fast).max(axis=1)
    above = [split.material_ids[rows[i]] for i in np.flatnonzero(~(delta <= TOLERANCE))]
    result = {
        **result_header("fingerprint_speed", argv),
        "dataset": args.dataset, "split": args.split, "split_sha256": split.sha256, "seed": args.seed,
        "n_structures": len(structures), "n_sites": int(sum(len(s) for s in structures)),
        "max_abs_delta": float(delta.max()), "tolerance": TOLERANCE,
        "n_above_tolerance": len(above), "material_ids_above_tolerance": above,
        "seconds_matminer": round(seconds_matminer, 3), "seconds_fast": round(seconds_fast, 3),
        "speedup": round(seconds_matminer / seconds_fast, 2),
        "fast_fallbacks_to_matminer": dict(crystalnn_fast.FALLBACKS),
        "definition": "one process, one thread, serial; matminer path first, then the fast path on the same rows",
    }
    out = args.out or REPO / "results" / "benchmarks" / f"fingerprint_speed_{args.dataset}_{args.split}.json"
    atomic_write_json(out, result)
    print({k: result[k] for k in ("n_structures", "max_abs_delta", "n_above_tolerance", "seconds_matminer",
                                  "seconds_fast", "speedup", "fast_fallbacks_to_matminer")})
    print("wrote", out)
    return 0 if not above else 1


if __name__ == "__main__":
    raise SystemExit(main())
