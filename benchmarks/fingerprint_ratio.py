"""Fingerprinting N samples: matminer's featurizers serially (as the CDVAE code runs them) against xtalbench's path.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/fingerprint_ratio.py \\
        results/mp20/external-diffcsp/custom-a37ae76e0023-seed0 --n 1000 --workers 2

One process, one run, the same first ``--n`` samples of a record's samples file: first matminer's
``CrystalNNFingerprint`` ("ops", mean over sites) and ``ElementProperty`` ("magpie") one structure after another
in this process; then ``harness.metrics.fingerprints.fingerprint_structures`` through a ``ProcessExecutor`` of
``--workers`` (worker start-up and imports included in its time). Reports both wall times, their ratio, the load
average around each arm, and the largest difference between the two arms' vectors. Writes
``results/benchmarks/fingerprint_ratio_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a run folder whose samples file is fingerprinted")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    from common import load_average, result_header

    from harness.io import atomic_write_json
    from harness.metrics.fingerprints import (
        composition_fingerprint,
        fingerprint_structures,
        scale_composition,
        structure_fingerprint_matminer,
    )
    from harness.parallel import ProcessExecutor
    from harness.records import load_record
    from harness.run_samples import record_samples

    record = load_record(args.record / "record.json")
    samples = record_samples(args.record, record)
    structures = [s.structure for s in samples if s.structure is not None][: args.n]

    load_before = load_average()
    start = time.perf_counter()
    struct_ref, comp_ref, ref_failed = [], [], []
    for i, structure in enumerate(structures):
        try:
            struct_ref.append(structure_fingerprint_matminer(structure))
            comp_ref.append(composition_fingerprint(structure.composition))
        except Exception:  # noqa: BLE001  (a failure is a failure in both arms; compared below)
            ref_failed.append(i)
            struct_ref.append(np.full(61, np.nan))
            comp_ref.append(np.full(132, np.nan))
    seconds_serial = time.perf_counter() - start
    load_middle = load_average()

    start = time.perf_counter()
    executor = ProcessExecutor(args.workers, progress=False)
    ours = fingerprint_structures(structures, executor=executor)
    seconds_ours = time.perf_counter() - start
    load_after = load_average()

    struct_ref, comp_ref = np.array(struct_ref), scale_composition(np.array(comp_ref))
    both = ours.ok & np.all(np.isfinite(struct_ref), axis=1)
    result = {
        **result_header("fingerprint_ratio", argv),
        "record": str(args.record), "run_id": record["run_id"], "dataset": record["dataset"],
        "n_structures": len(structures), "n_sites": int(sum(len(s) for s in structures)),
        "serial_matminer": {"seconds": round(seconds_serial, 1), "failed": len(ref_failed),
                            "definition": "CrystalNNFingerprint ops site mean + ElementProperty magpie, one process"},
        "xtalbench": {"seconds": round(seconds_ours, 1), "workers": args.workers, "failed": int((~ours.ok).sum()),
                      "definition": "fingerprint_structures through ProcessExecutor (start-up included)"},
        "ratio": round(seconds_serial / seconds_ours, 2),
        "max_abs_delta_struct": float(np.abs(ours.struct[both] - struct_ref[both]).max()),
        "max_abs_delta_comp_scaled": float(np.nanmax(np.abs(ours.comp[both] - comp_ref[both]))),
        "same_failures": sorted(ref_failed) == sorted(np.flatnonzero(~ours.ok).tolist()),
        "load_average": {"before": load_before, "between": load_middle, "after": load_after},
    }
    out = args.out or REPO / "results" / "benchmarks" / f"fingerprint_ratio_{record['dataset']}.json"
    atomic_write_json(out, result)
    print({k: result[k] for k in ("n_structures", "serial_matminer", "xtalbench", "ratio", "max_abs_delta_struct",
                                  "same_failures", "load_average")})
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
