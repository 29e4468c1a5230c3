"""CHGNet relaxation benchmarks and the stability family's sanity checks on a real dataset.

    python benchmarks/bench_relax.py throughput --n 50        # batched FIRE vs StructOptimizer, same structures
    python benchmarks/bench_relax.py throughput --scipy-cell-math  # also batched with scipy's 3×3 matrix functions
    python benchmarks/bench_relax.py validate --dataset perov5 # test on hull, train not novel, perturbed less stable
    python benchmarks/bench_relax.py denormals --record results/mp20/symmbfn/full-seed0-b1f190f685 --n 32
                                                              # subnormal floats flushed or not, same samples
    python benchmarks/bench_relax.py blas-threads              # numpy/scipy BLAS on 1 thread or all, same samples
    python benchmarks/bench_relax.py graphs                    # CHGNet's graphs by arrays or by its converter
    python benchmarks/bench_relax.py combined                  # both of the above, or neither

All run single-threaded (torch and BLAS; blas-threads lifts BLAS's limit on one side) and write JSON under
results/benchmarks/
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
warnings.filterwarnings("ignore")

OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks"

from common import quantiles, result_header  # noqa: E402  (benchmarks/ is the script's folder, first on sys.path)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine() -> dict:
    """What the machine did during the run (its hardware, commit and packages are in the result's header)."""
    import torch

    return {"torch_threads": torch.get_num_threads(), "load_avg_at_end": os.getloadavg()}


def _pick(split, n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = sorted(
        int(i) for i in rng.choice(len(split.structures), size=min(n, len(split.structures)), replace=False)
    )
    return idx, [split.structures[i] for i in idx]


def _timed(fn):
    wall, cpu = time.perf_counter(), _cpu_seconds()
    value = fn()
    return value, time.perf_counter() - wall, _cpu_seconds() - cpu


def throughput(args) -> dict:
    from harness.datasets import load_split
    from harness.stability.relax import RelaxSettings, load_model, relax_batched, relax_one_struct_optimizer

    split = load_split(args.dataset, "test", data_dir=args.data_dir)
    idx, structures = _pick(split, args.n, args.seed)
    load_model("0.3.0")  # excluded from both timings
    out = {"dataset": args.dataset, "split": "test", "indices": idx, "seed": args.seed, "n": len(structures)}
    runs = {}
    for batch_size in args.batch_sizes:
        settings = RelaxSettings(batch_size=batch_size)
        results, wall, cpu = _timed(
            lambda settings=settings, bs=batch_size: relax_batched(
                structures, settings, progress=True, desc=f"batched bs={bs}"
            )
        )
        runs[f"batched_bs{batch_size}"] = _summary(results, wall, cpu, settings)
        print(json.dumps({k: v for k, v in runs[f"batched_bs{batch_size}"].items() if k != "per_structure"}))
    if args.scipy_cell_math:
        from harness.stability import cellmath

        settings = RelaxSettings(batch_size=args.batch_sizes[0])
        install = cellmath.install
        cellmath.install = lambda cell_filter: False  # the filter keeps scipy's logm and expm_frechet
        try:
            results, wall, cpu = _timed(
                lambda: relax_batched(structures, settings, progress=True, desc="batched, scipy cell math")
            )
        finally:
            cellmath.install = install
        runs["batched_scipy_cell_math"] = _summary(results, wall, cpu, settings)
        print(json.dumps({k: v for k, v in runs["batched_scipy_cell_math"].items() if k != "per_structure"}))
    settings = RelaxSettings()
    from chgnet.model import StructOptimizer

    optimizer = StructOptimizer(model=load_model("0.3.0"), optimizer_class="FIRE", use_device="cpu")
    results, wall, cpu = _timed(
        lambda: [relax_one_struct_optimizer(s, settings, optimizer) for s in structures]
    )
    runs["struct_optimizer_one_at_a_time"] = _summary(results, wall, cpu, settings)
    print(
        json.dumps({k: v for k, v in runs["struct_optimizer_one_at_a_time"].items() if k != "per_structure"})
    )
    base = runs["struct_optimizer_one_at_a_time"]
    for run in runs.values():
        run["speedup_wall_vs_struct_optimizer"] = round(base["wall_s"] / run["wall_s"], 2)
        run["speedup_cpu_vs_struct_optimizer"] = round(base["cpu_s"] / run["cpu_s"], 2)
    batched = runs[f"batched_bs{args.batch_sizes[0]}"]["per_structure"]
    out["agreement"] = _agreement(batched, base["per_structure"])
    if "batched_scipy_cell_math" in runs:
        out["cell_math_agreement"] = _agreement(batched, runs["batched_scipy_cell_math"]["per_structure"])
    out["runs"] = runs
    out["machine"] = _machine()
    return out


def _paired(args, sides: dict, what: str) -> dict:
    """A record's generated samples relaxed twice by the protocol's batched FIRE, once under each of the two
    ``sides`` (name → a context manager factory; the first is the default). The samples go in groups; each group
    is relaxed both ways back to back, the first way alternating, so a load that changes during the run falls on
    both sides alike. Reported: CPU seconds each way and their ratio, and the two outcomes compared (final
    energies, step counts, convergence)."""
    import numpy as np

    from harness.records import load_record
    from harness.run_samples import record_samples
    from harness.stability.relax import RelaxSettings, load_relaxer, relax_batched

    run_dir = Path(args.record)
    record = load_record(run_dir / "record.json")
    samples = [s for s in record_samples(run_dir, record, data_dir=args.data_dir) if s.structure is not None]
    rng = np.random.default_rng(args.seed)
    picked = sorted(int(i) for i in rng.choice(len(samples), size=min(args.n, len(samples)), replace=False))
    structures = [samples[i].structure for i in picked]
    settings = RelaxSettings()
    load_relaxer(settings.relaxer, settings.model)  # loaded once, outside both timings
    (default, other) = names = list(sides)
    results: dict[str, list] = {name: [] for name in names}
    cpu, wall = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for number, start in enumerate(range(0, len(structures), args.group)):
        group = structures[start:start + args.group]
        for name in (names if number % 2 == 0 else names[::-1]):
            with sides[name]():
                out, wall_s, cpu_s = _timed(lambda group=group: relax_batched(group, settings))
            results[name].extend(out)
            cpu[name] += cpu_s
            wall[name] += wall_s
            print(f"group {number}: {name} {cpu_s:.1f} CPU s, {wall_s:.1f} s wall", flush=True)
    runs = {name: _summary(results[name], wall[name], cpu[name], settings) for name in names}
    first, second = runs[default]["per_structure"], runs[other]["per_structure"]
    return {
        "what": what, "record": run_dir.as_posix(), "record_run_id": record.get("run_id"), "sample_indices": picked,
        "seed": args.seed, "n": len(structures), "group": args.group,
        "atoms": int(sum(len(s) for s in structures)),
        **{f"cpu_s_{name}": round(cpu[name], 1) for name in names},
        **{f"wall_s_{name}": round(wall[name], 1) for name in names},
        f"{other}_over_{default}": round(cpu[other] / cpu[default], 3),
        f"{other}_over_{default}_wall": round(wall[other] / wall[default], 3),
        "agreement": {**_agreement(first, second),
                      "same_converged_fraction": sum(a["converged"] == b["converged"]
                                                     for a, b in zip(first, second)) / len(picked)},
        "runs": runs,
        "machine": _machine(),
    }


def _switched_off(attribute: str):
    """A context manager factory: the protocol relaxer's boolean ``attribute`` off within, back on after."""
    from contextlib import contextmanager

    from harness.stability.relax import RelaxSettings, load_relaxer

    relaxer = load_relaxer(RelaxSettings().relaxer, RelaxSettings().model)

    @contextmanager
    def off():
        setattr(relaxer, attribute, False)
        try:
            yield
        finally:
            setattr(relaxer, attribute, True)

    return off


def denormals(args) -> dict:
    """Subnormal floats flushed to zero in the model calls (the default, ``harness.relaxer.flushed_denormals``)
    or not."""
    return _paired(args, {"flushed": nullcontext, "not_flushed": _switched_off("flush_denormals")},
                   "subnormal floats flushed to zero in the relaxer's model calls, or not")


def graphs(args) -> dict:
    """CHGNet's crystal graphs built with array operations (the default, ``harness.stability.chgnet_graph``) or
    by CHGNet's own converter."""
    return _paired(args, {"array_graphs": nullcontext, "chgnet_converter": _switched_off("array_graphs")},
                   "CHGNet's crystal graphs built with array operations, or by CHGNet's own converter")


def combined(args) -> dict:
    """Both: subnormals flushed and graphs built with arrays (the default), or neither (the relaxer before them)."""
    from contextlib import ExitStack, contextmanager

    @contextmanager
    def neither():
        with ExitStack() as stack:
            for attribute in ("flush_denormals", "array_graphs"):
                stack.enter_context(_switched_off(attribute)())
            yield

    return _paired(args, {"flushed_array_graphs": nullcontext, "neither": neither},
                   "subnormals flushed and CHGNet's graphs built with arrays, or neither")


def blas_threads(args) -> dict:
    """numpy's and scipy's BLAS on one thread during a relaxation (the default, ``relax.RELAX_BLAS_THREADS``; what
    relaxation workers inherit too) or on every core (their own default), in a process whose torch runs on one
    thread."""
    from contextlib import contextmanager

    from threadpoolctl import threadpool_limits

    from harness.stability import relax

    cores = os.cpu_count() or 1

    @contextmanager
    def all_cores():
        relax.RELAX_BLAS_THREADS = None
        try:
            with threadpool_limits(limits=cores, user_api="blas"):
                yield
        finally:
            relax.RELAX_BLAS_THREADS = 1

    return _paired(args, {"one": nullcontext, "all_cores": all_cores},
                   f"numpy's and scipy's BLAS threads: 1, or the machine's {cores} cores")


def _agreement(first: list[dict], second: list[dict]) -> dict:
    """Final energies and step counts of two relaxations of the same structures, compared."""
    diffs = [
        abs(a["energy_per_atom"] - b["energy_per_atom"])
        for a, b in zip(first, second)
        if a["energy_per_atom"] is not None and b["energy_per_atom"] is not None
    ]
    return {
        "max_abs_energy_diff_ev_per_atom": max(diffs) if diffs else None,
        "median_abs_energy_diff_ev_per_atom": statistics.median(diffs) if diffs else None,
        "same_step_count_fraction": sum(a["steps"] == b["steps"] for a, b in zip(first, second)) / len(first),
    }


def _summary(results, wall: float, cpu: float, settings) -> dict:
    steps = sum(r.steps for r in results)
    return {
        "settings": settings.as_dict(),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "structures_per_s_wall": round(len(results) / wall, 3),
        "structures_per_cpu_s": round(len(results) / cpu, 3),
        "force_calls": steps + len(results),
        "force_calls_per_cpu_s": round((steps + len(results)) / cpu, 2),
        "n_converged": sum(r.converged for r in results),
        "n_failed": sum(r.error is not None for r in results),
        "per_structure": [
            {
                "energy_per_atom": r.energy_per_atom,
                "steps": r.steps,
                "converged": r.converged,
                "error": r.error,
            }
            for r in results
        ],
    }


def _perturb(structure, rng, sigma: float, strain: float):
    """Random strain (each component within +-strain) and a Gaussian displacement (sigma, Å) of every site."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    deform = np.eye(3) + rng.uniform(-strain, strain, size=(3, 3))
    lattice = Lattice(structure.lattice.matrix @ deform.T)
    cart = lattice.get_cartesian_coords(structure.frac_coords) + rng.normal(
        0, sigma, size=(len(structure), 3)
    )
    return Structure(lattice, structure.species, cart, coords_are_cartesian=True)


def validate(args) -> dict:
    import numpy as np

    from harness import stability
    from harness.datasets import get_card, load_split
    from harness.evaluation_types import Sample
    from harness.stability.reference import load_or_build_dataset_hull
    from harness.stability.relax import score_static

    card = get_card(args.dataset)
    train = load_split(card, args.train_split, data_dir=args.data_dir)
    test = load_split(card, "test", data_dir=args.data_dir)
    hull = load_or_build_dataset_hull(card, data_dir=args.data_dir, build=False)
    work = Path(args.work_dir)
    out = {"dataset": args.dataset, "hull": hull.describe(), "train_split": train.name, "seed": args.seed}
    out["hull"].pop("scoring_failures", None)

    def run(name, structures, n):
        samples = [Sample(i, s) for i, s in enumerate(structures)]
        result, wall, cpu = _timed(
            lambda: stability.evaluate(
                samples,
                dataset=card,
                train=train,
                n_relax=n,
                seed=args.seed,
                work_dir=work / name,
                data_dir=args.data_dir,
                progress=True,
            )
        )
        table = result.table
        print(name, json.dumps(result.metrics))
        return result, {
            "metrics": result.metrics,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "e_hull": quantiles(table["e_hull"].tolist()),
            "n_not_converged": result.info["n_not_converged"],
            "n_relax_failed": result.info["n_relax_failed"],
            "stability_errors": table["stability_error"].dropna().value_counts().head(5).to_dict(),
        }

    # 1. The test split's own structures against a hull that contains them (static scores).
    idx, test_structs = _pick(test, args.n_test, args.seed)
    static_e = score_static(test_structs)
    static_hull = [
        None if isinstance(e, str) else hull.e_above_hull(s.composition, e)[0]
        for s, e in zip(test_structs, static_e)
    ]
    res_test, out["test_relaxed"] = run("test", test_structs, len(test_structs))
    out["test_static_e_hull"] = quantiles(static_hull)
    gain = (
        np.asarray([np.nan if isinstance(e, str) else e for e in static_e], dtype=float)
        - res_test.table["relaxed_energy_per_atom"].astype(float).to_numpy()
    )
    out["test_relaxation_gain_ev_per_atom"] = quantiles(gain.tolist())
    # 2. Training structures scored as samples: none should be novel.
    _, train_structs = _pick(train, args.n_train, args.seed)
    _, out["train_as_samples"] = run("train", train_structs, len(train_structs))
    # 3. Randomly perturbed test structures against their originals (same relaxation, same hull).
    rng = np.random.default_rng(args.seed)
    originals = test_structs[: args.n_perturbed]
    perturbed = [_perturb(s, rng, args.sigma, args.strain) for s in originals]
    res_pert, out["perturbed"] = run("perturbed", perturbed, len(perturbed))
    orig_e = res_test.table["e_hull"].iloc[: len(originals)].astype(float).to_numpy()
    pert_e = res_pert.table["e_hull"].astype(float).to_numpy()
    ok = np.isfinite(orig_e) & np.isfinite(pert_e)
    pert_static = [
        hull.e_above_hull(s.composition, e)[0] if not isinstance(e, str) else None
        for s, e in zip(perturbed, score_static(perturbed))
    ]
    out["perturbed_vs_original"] = {
        "sigma_angstrom": args.sigma,
        "strain": args.strain,
        "n_pairs": int(ok.sum()),
        "mean_e_hull_original": round(float(orig_e[ok].mean()), 4),
        "mean_e_hull_perturbed_relaxed": round(float(pert_e[ok].mean()), 4),
        "frac_perturbed_higher_by_1meV": round(float((pert_e[ok] > orig_e[ok] + 1e-3).mean()), 4),
        "stable_rate_original": round(float(res_test.table["stable"].iloc[: len(originals)].mean()), 4),
        "stable_rate_perturbed": round(float(res_pert.table["stable"].mean()), 4),
        "perturbed_static_e_hull": quantiles(pert_static),
    }
    out["machine"] = _machine()
    return out


# the paired A/B benchmarks (``_paired``), by subcommand
PAIRED = {"denormals": denormals, "blas-threads": blas_threads, "graphs": graphs, "combined": combined}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=50)
    t.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    t.add_argument(
        "--scipy-cell-math",
        action="store_true",
        help="also time the first batch size with scipy's logm/expm_frechet in the cell filter",
    )
    v = sub.add_parser("validate")
    v.add_argument("--n-test", type=int, default=200)
    v.add_argument("--n-train", type=int, default=100)
    v.add_argument("--n-perturbed", type=int, default=50)
    v.add_argument("--sigma", type=float, default=0.3, help="Å, Gaussian displacement of every site")
    v.add_argument("--strain", type=float, default=0.1, help="uniform random strain component bound")
    v.add_argument("--train-split", default="train")
    v.add_argument("--work-dir", default="/tmp/xtalbench-validate")
    paired = [sub.add_parser(name) for name in PAIRED]
    for p in paired:
        p.add_argument("--record", default="results/mp20/symmbfn/full-seed0-b1f190f685",
                       help="a run folder whose generated samples are relaxed")
        p.add_argument("--n", type=int, default=32)
        p.add_argument("--group", type=int, default=8, help="samples relaxed both ways back to back")
    for p in (t, v, *paired):
        p.add_argument("--dataset", default="perov5")
        p.add_argument("--data-dir", default=None)
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    measured = {"throughput": throughput, "validate": validate, **PAIRED}[args.cmd](args)
    result = {**result_header("bench_relax", argv), **measured}  # after the run: "created" is when it ended
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"relax_{args.cmd.replace('-', '_')}_{Path(args.record).parent.parent.name}" if args.cmd in PAIRED \
        else f"relax_{args.cmd}_{args.dataset}"
    target = OUT / f"{name}.json"
    target.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
