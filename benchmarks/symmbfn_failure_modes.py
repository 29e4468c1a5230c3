"""SymmBFN's failure modes (issue 22) counted on seeded samples of a checkpoint, before and after each fix.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/symmbfn_failure_modes.py --dataset mp20 --n 1000 CKPT...

For each checkpoint the model's arrays are generated exactly as ``SymmBFNGenerator.sample`` draws them (same seed,
groups, sizes and batches), twice: with the element mask off (every type class allowed, as before) and on (only
elements the training data shows; needs a checkpoint with element counts). Each output is built into crystals with
the shared decoder, with ``avoid_occupied`` off (as before) and on. Counted per variant: crystals not built, with
elements outside the training data, with two atoms on one point (< 0.01 Å), with two atoms closer than 0.5 Å, and
the scatter of generated coordinates about the Wyckoff point they are snapped to (Å, per representative).
Writes ``results/training/symmbfn/failure_modes_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]


def generate_arrays(model, n: int, seed: int, batch_size: int, n_steps: int) -> list[dict]:
    """The per-batch output arrays ``SymmBFNGenerator.sample`` would build from (same draws, same batches)."""
    import numpy as np
    import torch

    from plugins._asymmetric.batching import size_batches

    rng = np.random.default_rng(seed)
    groups, sizes = model.stats.sample_groups_and_sizes(n, rng)
    sizes = np.maximum(sizes, 1)
    out = []
    for batch_index, index in enumerate(size_batches(sizes, batch_size)):
        generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + batch_index)
        out.append(model.generate(groups[index], sizes[index], n_steps, generator))
    return out


def snap_scatter(arrays_list: list[dict]) -> list[float]:
    """Cartesian distance (Å) from each generated representative to the Wyckoff point it is snapped to."""
    import numpy as np

    from plugins._asymmetric import k_to_matrix, project_k, project_site_symmetry
    from plugins._asymmetric.representation import _snapped_candidates

    distances = []
    for arrays in arrays_list:
        for i in range(len(arrays["space_group"])):
            group, keep = int(arrays["space_group"][i]), arrays["node_mask"][i]
            matrix = k_to_matrix(project_k(np.asarray(arrays["k"][i], dtype=float), group))
            if not np.all(np.isfinite(matrix)):
                continue
            for x, ss in zip(arrays["frac_coords"][i][keep], arrays["site_symmetry"][i][keep], strict=True):
                _, _, snapped = _snapped_candidates(group, project_site_symmetry(group, ss), x)[0]
                delta = snapped - np.mod(x, 1.0)
                distances.append(float(np.linalg.norm((delta - np.rint(delta)) @ matrix)))
    return distances


def count(structures, elements: set[int]) -> dict:
    import numpy as np

    built = [s for s in structures if s is not None]
    minimum = [float(s.distance_matrix[np.triu_indices(len(s), 1)].min()) if len(s) > 1 else np.inf for s in built]
    return {
        "n": len(structures),
        "not_built": len(structures) - len(built),
        "with_elements_outside_training": sum(any(site.specie.Z not in elements for site in s) for s in built),
        "two_atoms_on_one_point": sum(d < 0.01 for d in minimum),
        "two_atoms_closer_than_0.5": sum(d < 0.5 for d in minimum),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from common import quantiles, result_header

    from harness.datasets import load_split
    from harness.io import atomic_write_json, sha256_file
    from plugins._asymmetric import structures_from_arrays
    from plugins.symmbfn.training import load_model_file

    torch.set_num_threads(1)
    rows = []
    for checkpoint in args.checkpoints:
        model, manifest = load_model_file(checkpoint)
        splits = manifest.get("splits")
        elements = {site.specie.Z for s in load_split(args.dataset, splits, data_dir=args.data_dir).structures
                    for site in s}
        start = time.perf_counter()
        masked_stats = model.stats
        variants = {}
        model.stats = dataclasses.replace(masked_stats, type_counts=None)
        unmasked = generate_arrays(model, args.n, args.seed, args.batch_size, args.steps)
        model.stats = masked_stats
        outputs = {"mask off": unmasked}
        if masked_stats.type_counts is not None:
            outputs["mask on"] = generate_arrays(model, args.n, args.seed, args.batch_size, args.steps)
        for mask, arrays_list in outputs.items():
            for avoid in (False, True):
                structures = [s for arrays in arrays_list for s in structures_from_arrays(arrays, avoid_occupied=avoid)]
                variants[f"{mask}, occupied positions {'reassigned' if avoid else 'as generated'}"] = count(
                    structures, elements)
            variants[f"{mask}, snap scatter (Å)"] = quantiles(snap_scatter(arrays_list), thresholds=(0.01, 0.1, 0.5))
        rows.append({
            "checkpoint": str(checkpoint.resolve().relative_to(REPO)) if checkpoint.resolve().is_relative_to(REPO)
            else checkpoint.name,
            "sha256": sha256_file(checkpoint), "epochs": manifest.get("epochs"), "splits": splits,
            "training_elements": len(elements), "variants": variants,
            "seconds": round(time.perf_counter() - start, 1),
        })
        print(rows[-1])
    out = args.out or REPO / "results" / "training" / "symmbfn" / f"failure_modes_{args.dataset}.json"
    atomic_write_json(out, {
        **result_header("symmbfn_failure_modes", argv),
        "dataset": args.dataset, "n": args.n, "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size,
        "rows": rows,
    })
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
