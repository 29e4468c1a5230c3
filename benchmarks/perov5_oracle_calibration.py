"""Can CHGNet score Perov-5's optimised property? A held-out test of a calibrated oracle for ``heat_ref`` (issue 24).

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/perov5_oracle_calibration.py --n 600

The optimise task needs an oracle that gives the quantity the success thresholds are of, on the same scale. On
Perov-5 that is ``heat_ref``, Castelli et al.'s DFT heat of formation against their own reference systems, which
no offline code computes. This draws ``--n`` seeded Perov-5 training rows, relaxes them with the protocol's CHGNet
settings (resumable from ``--work-dir``), takes the formation energy per atom against the Materials Project's
elemental references (the MP-20 oracle's quantity), and fits ``heat_ref`` from it on two thirds of the rows:

- ``linear``: ``heat_ref ~ a * E_form + b``;
- ``per_element``: ``heat_ref ~ a * E_form + sum_el x_el * d_el`` (x_el the atomic fraction; ``d_el`` absorbs the
  difference between Castelli's references and MP's, element by element), ridge-regularised;
- ``dft_per_element``: the same fit from the rows' own DFT ``heat_all`` instead of CHGNet (how far a per-element
  shift alone explains ``heat_ref``: the ceiling for any calibrated energy).

On the held-out third it reports MAE, RMSE, R², Spearman's rho, and for each SR threshold how often the calibrated
oracle and ``heat_ref`` agree on "below the threshold" (``harness.property_oracle.held_out_metrics``: agreement,
precision, recall; results before 2026-12-07 name them accuracy, n_below_*). Writes
``results/benchmarks/perov5_oracle_calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks"

from common import relax_rows, result_header, seeded_rows  # noqa: E402  (benchmarks/ is the script's folder, first on sys.path)


def draw_rows(data_dir: str | None, n: int, seed: int):
    import pandas as pd

    from harness.datasets import ensure_split_file, get_card
    from harness.paths import data_dir as resolve

    frame = pd.read_csv(ensure_split_file(get_card("perov5"), "train", resolve(data_dir)))
    frame["split"], frame["row"] = "train", range(len(frame))
    return seeded_rows(frame, n, seed), len(frame)


def design(compositions, energies, elements, with_elements: bool):
    import numpy as np

    columns = [np.asarray(energies, float)]
    if with_elements:
        columns += [np.array([c.get_atomic_fraction(el) for c in compositions]) for el in elements]
    else:
        columns.append(np.ones(len(compositions)))
    return np.column_stack(columns)


def fit(x, y, ridge: float):
    """Least squares with an L2 penalty on every coefficient but the first (the energy's slope)."""
    import numpy as np

    penalty = np.full(x.shape[1], ridge)
    penalty[0] = 0.0
    return np.linalg.solve(x.T @ x + np.diag(penalty), x.T @ y)


def main(argv=None) -> int:
    import numpy as np
    from scipy.stats import spearmanr

    from harness.property_oracle import held_out_metrics
    from harness.stability.mp_reference import load_shipped_mp_hull
    from harness.tasks import OPTIMISED_PROPERTIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ridge", type=float, default=1e-3)
    parser.add_argument("--data-dir")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "perov5_oracle_calibration")
    parser.add_argument("--out", type=Path, default=OUT / "perov5_oracle_calibration.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    chosen, pool = draw_rows(args.data_dir, args.n, args.seed)
    results, n_relaxed_now, relax_s = relax_rows(chosen, args.work_dir, not args.no_progress)
    hull = load_shipped_mp_hull()
    keep, e_form, failures = [], [], {}
    for k, (result, structure) in enumerate(zip(results, chosen["structure"])):
        reason = result.error or (None if result.converged else "not converged")
        if reason is None and hull.missing_elements(structure.composition):
            reason = "element without an MP reference"
        if reason is not None:
            failures[reason[:80]] = failures.get(reason[:80], 0) + 1
            continue
        keep.append(k)
        e_form.append(hull.sample_energy(structure.composition, float(result.energy_per_atom)))
    rows = chosen.iloc[keep]
    compositions = [s.composition for s in rows["structure"]]
    elements = sorted({el.symbol for c in compositions for el in c})
    truth = rows["heat_ref"].to_numpy(float)
    rng = np.random.default_rng(args.seed + 1)
    held_out = np.zeros(len(rows), bool)
    held_out[rng.choice(len(rows), size=len(rows) // 3, replace=False)] = True
    prop = OPTIMISED_PROPERTIES["perov5"]
    models = {}
    for name, energy, with_elements in (("linear", e_form, False), ("per_element", e_form, True),
                                         ("dft_per_element", rows["heat_all"].to_numpy(float), True)):
        x = design(compositions, energy, elements, with_elements)
        coef = fit(x[~held_out], truth[~held_out], args.ridge)
        models[name] = {"slope": float(coef[0]), "n_fit": int((~held_out).sum()),
                        "held_out": held_out_metrics(truth[held_out], x[held_out] @ coef, prop.thresholds),
                        "in_sample": held_out_metrics(truth[~held_out], x[~held_out] @ coef, prop.thresholds)}
    out = {
        **result_header("perov5_oracle_calibration", argv),
        "dataset": "perov5", "split": "train", "pool": pool, "n_drawn": int(len(chosen)), "seed": args.seed,
        "ridge": args.ridge, "n_used": int(len(rows)), "n_held_out": int(held_out.sum()), "failures": failures,
        "n_relaxed_this_run": n_relaxed_now, "relax_s_this_run": round(relax_s, 1),
        "relax_steps_median": float(np.median([r.steps for r in results])),
        "e_form_chgnet": {"median": float(np.median(e_form)), "min": float(np.min(e_form)), "max": float(np.max(e_form))},
        "heat_ref": {"median": float(np.median(truth)), "min": float(truth.min()), "max": float(truth.max())},
        "spearman_raw": float(spearmanr(e_form, truth).statistic),
        "models": models,
        "elements": elements,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for name, model in models.items():
        h = model["held_out"]
        print(f"{name:16s} slope {model['slope']:.3f}  held-out MAE {h['mae']:.3f} RMSE {h['rmse']:.3f} R2 {h['r2']:.3f} "
              f"rho {h['spearman']:.3f}  " + "  ".join(f"{k}: acc {v['accuracy']:.3f} P {v['precision']} R {v['recall']}"
                                                     for k, v in h["thresholds"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
