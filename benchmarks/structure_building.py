"""Building SymmBFN's samples into structures: the pyxtal path it replaced against the orbit tables, side by side.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/structure_building.py --dataset mp20 --n 1000

One process, one thread. The shipped checkpoint generates ``--n`` draws (seed 0) exactly as ``SymmBFNGenerator.sample``
does (same draws, batches and steps; the network's time is recorded for scale). Both builders then build the same
arrays (``avoid_occupied`` as the generator's default) ``--repeats`` times, alternating which goes first; before that
every space group's tables are built once, timed apart (pyxtal's site-symmetry tables, shared by both builders, and the
orbit tables). Reports each pass, the ratio of the medians, and whether the two builders' structures agree (species,
lattice, coordinates). Writes ``results/benchmarks/structure_building_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]


def compare(new: list, old: list) -> dict:
    """How far the two builders' structures are apart: counts and the largest periodic coordinate difference."""
    import numpy as np

    same_sites = bitwise = 0
    max_delta = 0.0
    for a, b in zip(new, old, strict=True):
        if a is None or b is None:
            same_sites += a is None and b is None
            bitwise += a is None and b is None
            continue
        if [s.Z for s in a.species] != [s.Z for s in b.species] or not np.array_equal(a.lattice.matrix, b.lattice.matrix):
            continue
        same_sites += 1
        delta = a.frac_coords - b.frac_coords
        max_delta = max(max_delta, float(np.abs(delta - np.rint(delta)).max()))
        bitwise += bool(np.array_equal(a.frac_coords, b.frac_coords))
    return {"n": len(new), "same_species_order_and_lattice": same_sites, "coordinates_bitwise_equal": bitwise,
            "max_periodic_coordinate_delta": max_delta, "built_new": sum(s is not None for s in new),
            "built_old": sum(s is not None for s in old)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mp20")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from common import load_average, result_header
    from symmbfn_failure_modes import generate_arrays

    from harness.io import atomic_write_json, sha256_file
    from plugins._asymmetric import group_tables, structures_from_arrays
    from plugins._asymmetric.orbits import orbit_tables
    from plugins._asymmetric.pyxtal_reference import structures_from_arrays_pyxtal
    from plugins.symmbfn.generator import SymmBFNGenerator

    torch.set_num_threads(1)
    generator = SymmBFNGenerator(args.dataset)
    generator.load(None, "cpu")
    load_before = load_average()
    start = time.perf_counter()
    with torch.no_grad():
        arrays_list = generate_arrays(generator.model, args.n, args.seed, args.batch_size, args.steps)
    network_seconds = time.perf_counter() - start

    groups = sorted({int(g) for arrays in arrays_list for g in arrays["space_group"]})
    start = time.perf_counter()
    for group in groups:
        group_tables(group)
    site_tables_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for group in groups:
        orbit_tables(group)
    orbit_tables_seconds = time.perf_counter() - start

    builders = {"pyxtal": structures_from_arrays_pyxtal, "orbit_tables": structures_from_arrays}
    passes: dict[str, list[float]] = {name: [] for name in builders}
    built: dict[str, list] = {}
    for repeat in range(args.repeats):
        order = list(builders) if repeat % 2 == 0 else list(reversed(builders))
        for name in order:
            start = time.perf_counter()
            built[name] = [s for arrays in arrays_list
                           for s in builders[name](arrays, avoid_occupied=generator.avoid_occupied)]
            passes[name].append(round(time.perf_counter() - start, 3))
        print(f"pass {repeat + 1}: {passes}", flush=True)
    load_after = load_average()

    old, new = statistics.median(passes["pyxtal"]), statistics.median(passes["orbit_tables"])
    result = {
        **result_header("structure_building", argv),
        "dataset": args.dataset,
        "checkpoint": str(Path(generator.checkpoint_path).relative_to(REPO)),
        "checkpoint_sha256": sha256_file(generator.checkpoint_path),
        "inputs": {"draws": args.n, "seed": args.seed, "batch_size": args.batch_size, "steps": args.steps,
                   "space_groups": len(groups), "atoms_built": sum(len(s) for s in built["orbit_tables"] if s),
                   "avoid_occupied": generator.avoid_occupied,
                   "definition": "SymmBFNGenerator.sample's draws and batches (benchmarks/symmbfn_failure_modes.py)"},
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "network_seconds": round(network_seconds, 2),
        "tables_seconds": {"pyxtal_group_and_site_symmetries": round(site_tables_seconds, 2),
                           "orbit_tables": round(orbit_tables_seconds, 3),
                           "definition": "once per space group and process, before the passes; both builders use "
                                         "pyxtal's site-symmetry one-hots (group_tables)"},
        "passes_seconds": passes,
        "median_seconds": {"pyxtal": old, "orbit_tables": new},
        "ms_per_crystal": {"pyxtal": round(1000 * old / args.n, 3), "orbit_tables": round(1000 * new / args.n, 3)},
        "ratio": round(old / new, 2),
        "agreement": compare(built["orbit_tables"], built["pyxtal"]),
        "load_average": {"before": load_before, "after": load_after},
    }
    out = args.out or REPO / "results" / "benchmarks" / f"structure_building_{args.dataset}.json"
    atomic_write_json(out, result)
    print({k: result[k] for k in ("network_seconds", "tables_seconds", "median_seconds", "ratio", "agreement")})
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
