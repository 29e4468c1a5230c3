"""The two ways a sample's hull energy is found on the Materials Project hull, side by side, on a record's samples.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/hull_paths.py results/mp20/symmcd/full-seed0-80a8d90f3f

For the compositions of the record's relaxed subset, grouped by their number of elements, up to ``--per-size``
compositions each (seeded): the hull's formation energy at the composition from a pymatgen ``PhaseDiagram`` of its
chemical system (built fresh, as a sample of a new system pays for it, in a forked child killed after ``--timeout`` seconds) and
from the linear program ``hull.lowest_energy_per_atom``, with each one's seconds and their largest difference.
Then every relaxed sample of the record is scored again by the hull as the code now routes it
(``DIAGRAM_MAX_ELEMENTS``), against the record's stored E_hull: the largest difference and how many samples change
their stable / metastable flag. One process, one thread. Writes
``results/benchmarks/hull_paths_<dataset>_<run>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]
METASTABLE = 0.1


def _phase_diagram_child(system, composition, queue) -> None:
    from pymatgen.analysis.phase_diagram import PhaseDiagram

    start = time.perf_counter()
    value = float(PhaseDiagram(system).get_hull_energy_per_atom(composition))
    queue.put((value, time.perf_counter() - start))


def _phase_diagram(system, composition, timeout_s: float):
    """(hull energy, seconds) from a fresh PhaseDiagram, or (None, None) when it ran past ``timeout_s``. It runs in a
    forked child that is killed at the timeout: qhull is C code, which a signal in this process cannot stop."""
    import multiprocessing as mp
    import queue as queue_module

    context = mp.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_phase_diagram_child, args=(system, composition, results), daemon=True)
    child.start()
    try:
        return results.get(timeout=timeout_s)
    except queue_module.Empty:
        return None, None
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _stats(values: list[float]) -> dict | None:
    import numpy as np

    if not values:
        return None
    arr = np.asarray(values)
    return {"n": len(arr), "median": round(float(np.median(arr)), 4), "max": round(float(arr.max()), 4)}


def compare_paths(hull, compositions_by_size: dict[int, list], per_size: int, timeout_s: float, seed: int) -> list:
    import numpy as np

    from harness.stability.hull import lowest_energy_per_atom

    rng = np.random.default_rng(seed)
    rows = []
    for size in sorted(compositions_by_size):
        pool = compositions_by_size[size]
        picks = [pool[i] for i in sorted(rng.choice(len(pool), min(per_size, len(pool)), replace=False))]
        lp_s, pd_s, timeouts, diffs, entries = [], [], [], [], []
        for composition in picks:
            elements = [el.symbol for el in composition]
            system = hull._pool(elements)
            entries.append(len(system))
            start = time.perf_counter()
            lp = lowest_energy_per_atom(system, composition)
            lp_s.append(time.perf_counter() - start)
            pd, seconds = _phase_diagram(system, composition, timeout_s)
            if pd is None:
                timeouts.append(composition.reduced_formula)
                continue
            pd_s.append(seconds)
            diffs.append(abs(float(pd) - lp))
        rows.append({"elements": size, "compositions": len(picks), "of": len(pool),
                     "entries": _stats([float(e) for e in entries]),
                     "linear_program_s": _stats(lp_s), "phase_diagram_s": _stats(pd_s),
                     "phase_diagram_timeouts": timeouts,
                     "max_abs_difference_ev_per_atom": max(diffs) if diffs else None})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def rescore(hull, table) -> dict:
    """Every relaxed sample's E_hull as the code routes it now, against the record's stored values."""
    import numpy as np
    from pymatgen.core import Composition

    scored = table[table["relaxed_energy_per_atom"].notna() & table["e_hull"].notna()]
    diffs, flips = [], {"stable": 0, "metastable": 0}
    start = time.perf_counter()
    for formula, energy, stored in zip(scored["formula"], scored["relaxed_energy_per_atom"], scored["e_hull"],
                                       strict=True):
        composition = Composition(formula)
        e_hull, error = hull.e_above_hull(composition, hull.sample_energy(composition, float(energy)))
        if error is not None:
            flips.setdefault("now_unscored", 0)
            flips["now_unscored"] += 1
            continue
        diffs.append(abs(e_hull - stored))
        flips["stable"] += (e_hull <= 0) != (stored <= 0)
        flips["metastable"] += (e_hull <= METASTABLE) != (stored <= METASTABLE)
    return {"n": len(scored), "seconds": round(time.perf_counter() - start, 2),
            "max_abs_difference_ev_per_atom": float(np.max(diffs)) if diffs else None, "flag_changes": flips}


def main(argv=None) -> int:
    import pandas as pd
    from common import result_header
    from pymatgen.core import Composition

    from harness.io import atomic_write_json
    from harness.stability.hull import DIAGRAM_MAX_ELEMENTS
    from harness.stability.mp_reference import load_shipped_mp_hull

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder whose record has stability on the MP hull")
    parser.add_argument("--per-size", type=int, default=4, help="compositions timed per number of elements")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a phase diagram may take")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    record = json.loads((args.run_dir / "record.json").read_text())
    hull_info = (record.get("details", {}).get("stability") or {}).get("hull") or {}
    hull = load_shipped_mp_hull()
    if hull_info.get("sha256") != hull.sha256:
        parser.error(f"{args.run_dir}: its record's hull is not the shipped MP hull ({hull_info.get('name')})")
    table = pd.read_parquet(args.run_dir / "per_sample.parquet")
    relaxed = table[table["relaxed_energy_per_atom"].notna()]
    by_size: dict[int, list] = {}
    for formula in sorted(set(relaxed["formula"])):
        composition = Composition(formula)
        if not hull.missing_elements(composition):
            by_size.setdefault(len(composition.elements), []).append(composition)
    result = {**result_header("hull_paths", argv), "record": str(args.run_dir), "run_id": record["run_id"],
              "dataset": record["dataset"], "hull": hull.sha256, "diagram_max_elements": DIAGRAM_MAX_ELEMENTS,
              "per_size": args.per_size, "timeout_s": args.timeout, "seed": args.seed,
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
              "paths": compare_paths(hull, by_size, args.per_size, args.timeout, args.seed),
              "rescored_with_current_routing": rescore(hull, table)}
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.out or REPO / "results" / "benchmarks" / f"hull_paths_{record['dataset']}_{args.run_dir.name}.json"
    atomic_write_json(out, result)
    print(json.dumps(result["rescored_with_current_routing"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
