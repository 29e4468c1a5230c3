"""Two relaxers on the same relaxed samples of a record, side by side in one process: stability, agreement, cost.

    python benchmarks/relaxer_side_by_side.py results/mp20/external-diffcsp/custom-a37ae76e0023-seed0 \\
        --relaxer sevennet --n 100

Draws ``--n`` samples (seeded) from the record's relaxed subset and relaxes them with CHGNet (the protocol's) and
with ``--relaxer``, alternating chunks so that both see the same machine load, one torch thread each; scores both
on the shipped Materials Project hull exactly as the protocol does, and writes stable rates, the agreement on
stable / not stable, E_hull differences, seconds per structure (wall and CPU) and their ratio, and how far the
fresh CHGNet energies lie from the ones the record stores, to ``results/benchmarks/relaxer_side_by_side_*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks"

from common import load_average, quantiles, record_header  # noqa: E402  (benchmarks/ is first on sys.path)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _table(samples, results, hull):
    """Per-sample stability rows (the protocol's ``score_row`` and stable rule) of relaxation results."""
    import pandas as pd

    from harness.protocol import METASTABLE_EHULL, STABLE_EHULL
    from harness.stability import score_row

    rows = {}
    for sample, result in zip(samples, results):
        row = score_row(sample, result, hull)
        ok = row["stability_error"] is None and row["e_hull"] is not None
        row["stable"] = bool(ok and row["e_hull"] <= STABLE_EHULL)
        row["metastable"] = bool(ok and row["e_hull"] <= METASTABLE_EHULL)
        row["formula"] = sample.structure.composition.reduced_formula
        row["seconds"] = result.seconds
        rows[sample.index] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "index"
    return table


def _summary(table, wall: float, cpu: float) -> dict:
    n = len(table)
    return {
        "n": n,
        "stable_rate": float(table["stable"].mean()),
        "metastable_rate": float(table["metastable"].mean()),
        "n_stable": int(table["stable"].sum()),
        "n_failed": int(table["relaxed_energy_per_atom"].isna().sum()),
        "n_not_converged": int((~table["relax_converged"].astype(bool) & table["relaxed_energy_per_atom"].notna()).sum()),
        "steps": quantiles(table["relax_steps"].astype(float).tolist(), thresholds=()),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "wall_s_per_structure": round(wall / n, 3),
        "cpu_s_per_structure": round(cpu / n, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from harness.records import PER_SAMPLE_NAME, RECORD_NAME, load_record
    from harness.relaxer import PROTOCOL_RELAXER
    from harness.run_samples import record_samples
    from harness.stability.agreement import relaxer_agreement
    from harness.stability.mp_reference import load_shipped_mp_hull
    from harness.stability.relax import RelaxSettings, load_relaxer, relax_batched

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder whose record relaxed a subset with CHGNet")
    parser.add_argument("--relaxer", default="sevennet")
    parser.add_argument("--n", type=int, default=100, help="samples drawn from the record's relaxed subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=25, help="structures per alternating chunk")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    run_dir = args.run_dir.resolve()
    record = load_record(run_dir / RECORD_NAME)
    stored = pd.read_parquet(run_dir / (record["files"].get("per_sample") or PER_SAMPLE_NAME))
    relaxed = stored[stored["stable"].notna() & stored["constructed"].astype(bool)]
    rng = np.random.default_rng(args.seed)
    picked = sorted(int(i) for i in rng.choice(relaxed.index.to_numpy(), size=min(args.n, len(relaxed)), replace=False))
    every = record_samples(run_dir, record)
    samples = [every[i] for i in picked]
    hull = load_shipped_mp_hull()

    names = (PROTOCOL_RELAXER, args.relaxer)
    settings = {name: RelaxSettings.for_relaxer(name) for name in names}
    for name in names:  # loading the weights is not relaxing
        load_relaxer(name, settings[name].model).model  # noqa: B018
    results = {name: [] for name in names}
    clock = {name: [0.0, 0.0] for name in names}
    load = []
    for start in range(0, len(samples), args.chunk):
        chunk = samples[start : start + args.chunk]
        for name in names:
            wall, cpu = time.perf_counter(), _cpu_seconds()
            results[name] += relax_batched([s.structure for s in chunk], settings[name])
            clock[name][0] += time.perf_counter() - wall
            clock[name][1] += _cpu_seconds() - cpu
        load.append(load_average())
        print(f"{start + len(chunk)}/{len(samples)} relaxed by both; load {load[-1]}", flush=True)

    tables = {name: _table(samples, results[name], hull) for name in names}
    summary, rows = relaxer_agreement(tables[names[0]], tables[names[1]], names)
    fresh = tables[PROTOCOL_RELAXER]["relaxed_energy_per_atom"].astype(float)
    before = stored.loc[picked, "relaxed_energy_per_atom"].astype(float)
    same_stable = (tables[PROTOCOL_RELAXER]["stable"] == stored.loc[picked, "stable"].astype(bool)).mean()
    per = {name: _summary(tables[name], *clock[name]) for name in names}
    result = {
        **record_header("relaxer_side_by_side", argv, run_dir, record, REPO),
        "relaxers": {name: load_relaxer(name, settings[name].model).describe() for name in names},
        "settings": {name: settings[name].as_dict() for name in names},
        "subset": {"n": len(samples), "seed": args.seed, "drawn_from": f"the record's relaxed subset "
                   f"({len(relaxed)} constructed samples)", "indices": picked},
        "order": f"alternating chunks of {args.chunk}: {names[0]} then {names[1]}, one process, one torch thread",
        "load_average_after_each_chunk": load,
        "per_relaxer": per,
        "cost_ratio": {"wall": round(per[names[1]]["wall_s"] / per[names[0]]["wall_s"], 2),
                       "cpu": round(per[names[1]]["cpu_s"] / per[names[0]]["cpu_s"], 2),
                       "meaning": f"{names[1]} seconds per structure / {names[0]}'s, the same structures"},
        "agreement": summary,
        "chgnet_against_the_record": {
            "energy_abs_diff": quantiles((fresh - before).abs().tolist(), thresholds=(0.001, 0.01)),
            "same_stable_flag": round(float(same_stable), 4),
            "note": "the fresh CHGNet relaxations against the energies and stable flags the record stores",
        },
        "per_sample": json.loads(rows.reset_index().to_json(orient="records")),
    }
    dataset, group = record["dataset"], run_dir.parent.name.removeprefix("external-")
    out = args.out or OUT / f"relaxer_side_by_side_{dataset}_{group}_{args.relaxer}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("per_relaxer", "cost_ratio")}, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "relaxers"}, indent=1))
    print(out)
    return result


if __name__ == "__main__":
    main()
