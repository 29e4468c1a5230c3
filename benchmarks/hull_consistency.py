"""Both sides of E_hull relaxed (issue #4): dataset structures scored as samples against on-demand relaxed references.

    XTALBENCH_DATA=/work/shared/datasets nice -n 5 python benchmarks/hull_consistency.py --dataset perov5 --n 50

Takes ``--n`` seeded test-split structures as samples, plus a copy of each with every site displaced by a seeded
Gaussian (``--sigma`` Å), and runs the stability family on both (samples relaxed, references relaxed on demand
with the default ``REFERENCE_RELAX_MARGIN``). Reports their E_hull against those references and, from the same
relaxed energies, against the static references (the treatment before issue #4). A margin study relaxes every
entry of the samples' chemical systems: the distribution of reference relaxation gains, how far above the static
hull the entries of the fully relaxed hull started, and how far the samples' E_hull moves when only entries within
``--study-margin`` of the static hull are relaxed. Reference relaxations are cached (a rerun reuses them); sample
relaxations resume from ``--work-dir``. Runs single-threaded; writes ``results/benchmarks/hull_consistency_<dataset>.json``.
Needs the dataset's cached hull (``bench hull build``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks"

from common import quantiles, result_header  # noqa: E402  (benchmarks/ is the script's folder, first on sys.path)


def _perturb(structure, rng, sigma: float):
    """Every site displaced by an isotropic Gaussian of ``sigma`` Å; the lattice unchanged."""
    from pymatgen.core import Structure

    cart = structure.cart_coords + rng.normal(0.0, sigma, size=(len(structure), 3))
    return Structure(structure.lattice, structure.species, cart, coords_are_cartesian=True)


def _evaluate(name: str, structures, args, train) -> tuple:
    from harness import stability
    from harness.evaluation_types import Sample

    samples = [Sample(i, s) for i, s in enumerate(structures)]
    start = time.perf_counter()
    result = stability.evaluate(
        samples,
        dataset=args.dataset,
        train=train,
        n_relax=len(samples),
        seed=args.seed,
        work_dir=Path(args.work_dir) / name,
        data_dir=args.data_dir,
        progress=True,
    )
    return result, time.perf_counter() - start


def _summary(result, static, seconds: float) -> dict:
    table = result.table
    return {
        "e_hull_relaxed_references": quantiles(table["e_hull"].astype(float).tolist()),
        "e_hull_static_references": quantiles(static),
        "stable_rate": result.metrics["stable_rate"],
        "metastable_rate": result.metrics["metastable_rate"],
        "n_not_converged": result.info["n_not_converged"],
        "n_relax_failed": result.info["n_relax_failed"],
        "reference_relaxation": result.info["hull"]["reference_relaxation"],
        "timings": result.info["timings"],
        "wall_s": round(seconds, 1),
    }


def _e_hull_with(hull, structures, table) -> list:
    """E_hull of a table's relaxed energies against ``hull`` (None where there is no energy)."""
    out = []
    for i, structure in enumerate(structures):
        energy = table.loc[i, "relaxed_energy_per_atom"]
        out.append(None if energy is None or energy != energy else hull.e_above_hull(structure.composition, energy)[0])
    return out


def _nan(values):
    import numpy as np

    return np.array([np.nan if v is None else v for v in values], dtype=float)


def margin_study(hull, compositions, study_margin: float, data_dir) -> tuple[dict, object]:
    """Relax every entry of the samples' systems: gains, and how far above the static hull the relaxed hull reaches."""
    from harness.stability.ondemand import ELEMENT_PREFIX, relaxed_on_demand

    full = relaxed_on_demand(hull, margin=None, data_dir=data_dir, progress=True)
    start = time.perf_counter()
    full.prepare(compositions)
    seconds = time.perf_counter() - start
    entries = {}
    for composition in compositions:
        for entry in hull.chemsys_entries(el.symbol for el in composition):
            if not entry.attribute.startswith(ELEMENT_PREFIX):
                entries[entry.attribute] = entry
    static_e_hull, gain = {}, {}
    for entry_id, entry in entries.items():
        static_e_hull[entry_id] = hull._diagram([el.symbol for el in entry.composition]).get_e_above_hull(entry)
        relaxed = full.relaxed.get(entry_id)
        gain[entry_id] = None if relaxed is None else entry.energy_per_atom - relaxed
    by_bin = {}
    for low, high in [(None, study_margin), (study_margin, 0.5), (0.5, 1.0), (1.0, None)]:
        label = "static_e_hull" + ("" if low is None else f"_gt_{low}") + ("" if high is None else f"_le_{high}")
        by_bin[label] = quantiles(
            [
                gain[k]
                for k, e in static_e_hull.items()
                if (low is None or e > low) and (high is None or e <= high)
            ]
        )
    # Entries on the fully relaxed hull of some sample's system, and how far above the static hull they started.
    vertices = set()
    for composition in compositions:
        diagram = full._diagram([el.symbol for el in composition])
        vertices.update(e.attribute for e in diagram.stable_entries if not e.attribute.startswith(ELEMENT_PREFIX))
    started = sorted(static_e_hull[v] for v in vertices)
    return {
        "n_entries": len(entries),
        "seconds_relaxing_this_call": round(seconds, 1),
        "reference_relaxation": full.describe()["reference_relaxation"],
        "gain_ev_per_atom_all": quantiles(list(gain.values())),
        "gain_ev_per_atom_by_static_e_hull": by_bin,
        "n_relaxed_hull_vertices": len(started),
        "n_vertices_beyond_study_margin": sum(1 for v in started if v > study_margin + 1e-9),
        "max_static_e_hull_of_a_relaxed_hull_vertex": round(started[-1], 4) if started else None,
        "static_e_hull_of_vertices": quantiles(started),
    }, full


def run(args) -> dict:
    import numpy as np

    from harness.datasets import get_card, load_split
    from harness.stability.ondemand import REFERENCE_RELAX_MARGIN, relaxed_on_demand
    from harness.stability.reference import load_or_build_dataset_hull

    card = get_card(args.dataset)
    hull = load_or_build_dataset_hull(card, data_dir=args.data_dir, build=False)
    test = load_split(card, "test", data_dir=args.data_dir)
    train = load_split(card, args.train_split, data_dir=args.data_dir)
    rng = np.random.default_rng(args.seed)
    idx = sorted(int(i) for i in rng.choice(len(test), size=min(args.n, len(test)), replace=False))
    originals = [test.structures[i] for i in idx]
    perturbed = [_perturb(s, np.random.default_rng([args.seed, i]), args.sigma) for i, s in zip(idx, originals)]

    res_orig, t_orig = _evaluate("test", originals, args, train)
    res_pert, t_pert = _evaluate("perturbed", perturbed, args, train)
    e_orig = res_orig.table["e_hull"].astype(float).to_numpy()
    e_pert = res_pert.table["e_hull"].astype(float).to_numpy()
    static_o = _nan(_e_hull_with(hull, originals, res_orig.table))
    static_p = _nan(_e_hull_with(hull, perturbed, res_pert.table))

    study, _ = margin_study(hull, [s.composition for s in originals], args.study_margin, args.data_dir)
    partial = relaxed_on_demand(hull, margin=args.study_margin, data_dir=args.data_dir, progress=True)
    margin_o = _nan(_e_hull_with(partial, originals, res_orig.table))
    margin_p = _nan(_e_hull_with(partial, perturbed, res_pert.table))
    moved = np.abs(np.concatenate([margin_o - e_orig, margin_p - e_pert]))
    moved = moved[np.isfinite(moved)]
    study["study_margin_ev_per_atom"] = args.study_margin
    study["samples_e_hull_study_margin_vs_default"] = {
        "max_abs_diff": round(float(moved.max()), 4) if len(moved) else None,
        "n_differ_by_1meV": int((moved > 1e-3).sum()),
        "n": int(len(moved)),
    }
    study["test_e_hull_study_margin"] = quantiles(margin_o.tolist())
    study["perturbed_e_hull_study_margin"] = quantiles(margin_p.tolist())

    ok = np.isfinite(e_orig) & np.isfinite(e_pert)
    return {
        "dataset": args.dataset,
        "hull": {k: v for k, v in hull.describe().items() if k != "scoring_failures"},
        "reference_relax_margin_ev_per_atom": REFERENCE_RELAX_MARGIN,
        "seed": args.seed,
        "test_indices": idx,
        "test": _summary(res_orig, static_o.tolist(), t_orig),
        "perturbed": {"sigma_angstrom": args.sigma, **_summary(res_pert, static_p.tolist(), t_pert)},
        "perturbed_vs_original": {
            "n_pairs": int(ok.sum()),
            "relaxed_references": {
                "mean_e_hull_original": round(float(e_orig[ok].mean()), 4),
                "mean_e_hull_perturbed": round(float(e_pert[ok].mean()), 4),
                "frac_perturbed_lower_by_1meV": round(float((e_pert[ok] < e_orig[ok] - 1e-3).mean()), 4),
                "frac_perturbed_higher_by_1meV": round(float((e_pert[ok] > e_orig[ok] + 1e-3).mean()), 4),
                "median_perturbed_minus_original": round(float(np.median(e_pert[ok] - e_orig[ok])), 4),
            },
            "static_references": {
                "mean_e_hull_original": round(float(np.nanmean(static_o)), 4),
                "mean_e_hull_perturbed": round(float(np.nanmean(static_p)), 4),
            },
            "symmetry": _symmetry_of_pairs(res_orig, res_pert, args.work_dir),
        },
        "margin_study": study,
        "per_sample": [
            {
                "test_index": i,
                "formula": s.composition.reduced_formula,
                "e_hull": _round(e_orig[k]),
                "e_hull_static_references": _round(static_o[k]),
                f"e_hull_margin_{args.study_margin}": _round(margin_o[k]),
                "e_hull_perturbed": _round(e_pert[k]),
                "e_hull_perturbed_static_references": _round(static_p[k]),
            }
            for k, (i, s) in enumerate(zip(idx, originals))
        ],
        "torch_threads": __import__("torch").get_num_threads(),
    }


def _symmetry_of_pairs(res_orig, res_pert, work_dir) -> dict:
    """Do perturbed copies that end lower than their original also end with fewer point-group operations?"""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from harness.stability.relax import RelaxResult

    def relaxed(name: str, i: int):
        path = next(Path(work_dir, name).glob(f"relax-*/{i}.json"), None)
        return None if path is None else RelaxResult.from_json(json.loads(path.read_text()))

    def n_ops(structure) -> int:
        return len(SpacegroupAnalyzer(structure, symprec=0.1).get_point_group_operations())

    lower = lower_fewer = other = other_fewer = 0
    for i in res_orig.table.index:
        a, b = relaxed("test", i), relaxed("perturbed", i)
        if a is None or b is None or a.structure is None or b.structure is None:
            continue
        fewer = n_ops(b.structure) < n_ops(a.structure)
        if b.energy_per_atom < a.energy_per_atom - 1e-3:
            lower, lower_fewer = lower + 1, lower_fewer + fewer
        else:
            other, other_fewer = other + 1, other_fewer + fewer
    return {
        "symprec": 0.1,
        "n_perturbed_lower_by_1meV": lower,
        "of_which_fewer_point_group_ops": lower_fewer,
        "n_other": other,
        "of_which_fewer_point_group_ops_other": other_fewer,
    }


def _round(value) -> float | None:
    return None if value != value else round(float(value), 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="perov5")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=50, help="test structures taken as samples")
    parser.add_argument("--sigma", type=float, default=0.1, help="Å, Gaussian displacement of every site")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-split", default="train", help="novelty reference (mp20 here: train_partial)")
    parser.add_argument("--study-margin", type=float, default=0.1, help="eV/atom margin compared with the default")
    parser.add_argument("--out", type=Path, default=None, help="default results/benchmarks/hull_consistency_<dataset>.json")
    parser.add_argument("--work-dir", default="/tmp/xtalbench-hull-consistency", help="sample relaxations (resumable)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    measured = run(args)
    result = {**result_header("hull_consistency", argv), **measured}  # after the run: "created" is when it ended
    from harness.io import atomic_write_text

    target = args.out or OUT / f"hull_consistency_{args.dataset}.json"
    atomic_write_text(target, json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("test", "perturbed_vs_original")}, indent=1, default=str)[:4000])
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
