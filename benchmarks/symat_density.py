"""SyMat's low densities (issue 23): which stage makes the cells too large for their atoms, before and after the fix.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/symat_density.py --dataset mp20 --n 300

One torch thread, seeded. For each model variant, on ``--n`` samples drawn exactly as ``SyMatGenerator.sample``
draws them (same seed, batches and Langevin settings):
  (a) volume per atom and density of the samples against the test and training splits; the Wasserstein distance
      of density to test; samples outside the training split's 1st-99th percentile range;
  (b) ``--encode`` training crystals encoded (posterior means) and decoded: lattice items, volume and atom count
      against the crystal's own;
  (c) decoded atom counts and numbers of elements against the training split's;
  (d) after the Langevin dynamics, each atom's nearest-neighbour distance and the packing ratio
      NN / (V/N)^(1/3) against the same number of test crystals.
Beside them, decode only: density when the latent comes from the prior, from the encoded training crystals
(aggregate posterior), from the aggregate posterior with z_L taken from another crystal, and prior z_A with
posterior z_L -- which says whether the composition latent, the lattice latent or their independence is at fault.

Variants: ``shipped`` (the checkpoint as it is) and ``lattice head refit``: the same encoder, composition
decoders and score model, with only the lattice decoder MLP^L fitted again (``--refit-epochs``, on the encoded
training split) to the ``lattice_scale`` target, lengths / N^(1/3), that plugin version 0.2 trains with. It checks
the fix without retraining the whole model. Writes ``results/benchmarks/symat_density_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections import Counter
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]
TRAIN_SPLITS = {"mp20": "val+train_partial", "perov5": "train", "carbon24": "val"}


def nearest_neighbour_distances(structure, start: float = 4.0) -> list[float]:
    """Each site's distance to its nearest other atom or periodic image (Å)."""
    import numpy as np

    radius = start
    while True:
        centres, _, _, distances = structure.get_neighbor_list(radius)
        nearest = np.full(len(structure), np.inf)
        np.minimum.at(nearest, centres, distances)
        if np.isfinite(nearest).all() or radius > 64:
            return nearest.tolist()
        radius *= 2


def describe(structures, quantiles) -> dict:
    """Sizes, volume per atom, density, nearest-neighbour distances and packing ratio of built structures."""
    import numpy as np

    built = [s for s in structures if s is not None]
    n_atoms = np.array([len(s) for s in built])
    vpa = np.array([s.volume / len(s) for s in built])
    nn, packing, min_dist = [], [], []
    for s, v in zip(built, vpa, strict=True):
        d = nearest_neighbour_distances(s)
        nn.extend(d)
        packing.extend(np.asarray(d) / v ** (1 / 3))
        min_dist.append(min(d) if len(s) > 1 else np.inf)
    return {
        "n": len(structures),
        "built": len(built),
        "atoms": quantiles(n_atoms, thresholds=()),
        "atom_count_histogram": {int(k): int(v) for k, v in sorted(Counter(n_atoms.tolist()).items())},
        "elements": quantiles([len(s.composition.elements) for s in built], thresholds=()),
        "volume_per_atom": quantiles(vpa, thresholds=()),
        "density": quantiles([s.density for s in built], thresholds=()),
        "nn_distance": quantiles(nn, thresholds=(0.5, 1.0)),
        "packing_ratio": quantiles(packing, thresholds=()),
        "min_distance_ge_0.5": int(sum(d >= 0.5 for d in min_dist)),
    }


def perovskite_counts(structures) -> dict:
    """Perov-5 shapes: five atoms; the element-count pattern (1,1,3) (ABX3); cubic cells."""
    built = [s for s in structures if s is not None]
    pattern = Counter(tuple(sorted(Counter(s.atomic_numbers).values())) for s in built)
    cubic = sum(
        max(abs(a - 90) for a in s.lattice.angles) < 0.5 and max(s.lattice.abc) - min(s.lattice.abc) < 0.05
        for s in built
    )
    return {
        "five_atoms": sum(len(s) == 5 for s in built),
        "abx3_pattern": pattern.get((1, 1, 3), 0),
        "cubic": int(cubic),
        "patterns": {"-".join(map(str, k)): v for k, v in pattern.most_common(8)},
    }


def failure_counts(structures, train_density, test_density) -> dict:
    """Samples whose density is outside the training split's 1st-99th percentiles; Wasserstein distance to test."""
    import numpy as np

    from harness.metrics.distributions import wdist
    from harness.metrics.validity import struct_validity

    built = [s for s in structures if s is not None]
    rho = np.array([s.density for s in built])
    low, high = np.quantile(train_density, [0.01, 0.99])
    valid = [s.density for s in built if struct_validity(s)]
    return {
        "train_density_p1_p99": [round(float(low), 3), round(float(high), 3)],
        "density_below_p1": int((rho < low).sum()),
        "density_above_p99": int((rho > high).sum()),
        "wdist_density_vs_test_built": round(wdist(rho, test_density), 4),
        "wdist_density_vs_test_struct_valid": round(wdist(valid, test_density), 4) if valid else None,
        "struct_valid": len(valid),
    }


def encode(model, crystals, batch_size: int = 128):
    """Posterior means and log-variances of the crystals' latents."""
    import torch

    from plugins.symat.data import collate
    from plugins.symat.graph import build_multigraph

    mus, logvars = [], []
    with torch.no_grad():
        for start in range(0, len(crystals), batch_size):
            batch = collate(crystals[start : start + batch_size])
            graph = build_multigraph(batch.frac, batch.lattices, batch.num_atoms, model.cfg["cutoff"])
            mu, logvar = model.vae.encode(batch.numbers, graph, batch.crystal_of_atom, len(batch.num_atoms))
            mus.append(mu)
            logvars.append(logvar)
    return torch.cat(mus), torch.cat(logvars)


def refit_lattice_head(model, mu, logvar, params, num_atoms, epochs: int, seed: int):
    """A copy of ``model`` whose lattice decoder regresses lengths / N^(1/3) (``lattice_scale``), fitted on the
    encoded training crystals (z_L drawn from each posterior at every step), everything else unchanged."""
    import torch

    from plugins.symat.data import per_atom_lengths
    from plugins.symat.nets import mlp

    new = copy.deepcopy(model)
    new.cfg["lattice_scale"] = True
    items = per_atom_lengths(params, num_atoms).float()
    new.lattice_mean.copy_(items.mean(0))
    new.lattice_std.copy_(items.std(0).clamp_min(1e-3))
    target = (items - new.lattice_mean) / new.lattice_std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new.vae.mlp_l = mlp(new.vae.latent_l, new.cfg["mlp_hidden"], 6)
    mu_l, std_l = mu[:, new.vae.latent_a :], torch.exp(0.5 * logvar[:, new.vae.latent_a :])
    opt = torch.optim.Adam(new.vae.mlp_l.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    start, steps, losses = time.perf_counter(), 0, []
    for _ in range(epochs):
        order = torch.randperm(len(target), generator=gen)
        total = 0.0
        for i in range(0, len(order), 256):
            idx = order[i : i + 256]
            z = mu_l[idx] + torch.randn(mu_l[idx].shape, generator=gen) * std_l[idx]
            loss = torch.nn.functional.mse_loss(new.vae.mlp_l(z), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            steps += 1
        losses.append(total / len(target))
    new.eval()
    return new, {
        "seconds": round(time.perf_counter() - start, 1),
        "epochs": epochs,
        "steps": steps,
        "crystals": len(target),
        "lattice_mse_standardised_by_epoch": {
            e: round(losses[e - 1], 4) for e in sorted({1, 10, 100, epochs}) if 0 < e <= epochs
        },
    }


def lattice_mse(model, mu, logvar, params, num_atoms, seed: int) -> float:
    """The model's own lattice loss (standardised MSE, z_L drawn from the posterior) on encoded crystals."""
    import torch

    z = mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed)) * torch.exp(0.5 * logvar)
    target = (model.lattice_items(params, num_atoms).float() - model.lattice_mean) / model.lattice_std
    with torch.no_grad():
        return round(float(torch.nn.functional.mse_loss(model.vae.mlp_l(model.vae.split(z)[1]), target)), 4)


def reconstruction(model, mu, crystals, quantiles) -> dict:
    """(b): decode posterior means and compare with the crystals they came from."""
    import numpy as np
    import torch

    from plugins.symat.graph import lattice_params
    from plugins.symat.sampling import decode

    decoded = decode(model, mu)
    true_n = np.array([len(c.numbers) for c in crystals])
    n = np.array([len(a) for a in decoded.numbers])
    true_lat = torch.stack([c.lattice for c in crystals]).double()
    volume = torch.linalg.det(decoded.lattices.double()).abs().numpy()
    true_volume = torch.linalg.det(true_lat).abs().numpy()
    error = (lattice_params(decoded.lattices.double()) - lattice_params(true_lat)).abs().mean(0).numpy()
    return {
        "crystals": len(crystals),
        "atom_count_exact": int((n == true_n).sum()),
        "composition_exact": int(
            sum(
                Counter(a) == Counter(c.numbers.tolist())
                for a, c in zip(decoded.numbers, crystals, strict=True)
            )
        ),
        "atoms_decoded_minus_true": quantiles(n - true_n, thresholds=()),
        "lattice_mae_a_b_c_alpha_beta_gamma": [round(float(x), 3) for x in error],
        "volume_ratio_decoded_over_true": quantiles(volume / true_volume, thresholds=()),
        "volume_per_atom_decoded": quantiles(volume / n, thresholds=()),
        "volume_per_atom_true": quantiles(true_volume / true_n, thresholds=()),
    }


def latent_sources(model, mu, logvar, seed: int, quantiles) -> dict:
    """Decode-only density and atom counts for latents from the prior, the aggregate posterior and mixtures."""
    import numpy as np
    import torch
    from pymatgen.core.periodic_table import Element

    from plugins.symat.sampling import decode

    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(mu.shape, generator=gen)
    post = mu + eps * torch.exp(0.5 * logvar)
    shuffled_l = post.clone()
    split = model.vae.latent_a
    shuffled_l[:, split:] = post[torch.randperm(len(post), generator=gen), split:]
    prior_a = post.clone()
    prior_a[:, :split] = eps[:, :split]
    mass = {}
    out = {}
    for name, z in (
        ("prior N(0, I)", eps),
        ("aggregate posterior", post),
        ("aggregate posterior, z_L of another crystal", shuffled_l),
        ("prior z_A, posterior z_L", prior_a),
    ):
        decoded = decode(model, z)
        n = np.array([len(a) for a in decoded.numbers])
        volume = torch.linalg.det(decoded.lattices.double()).abs().numpy()
        m = np.array(
            [sum(mass.setdefault(x, Element.from_Z(x).atomic_mass) for x in a) for a in decoded.numbers]
        )
        out[name] = {
            "atoms": quantiles(n, thresholds=()),
            "corr_atoms_volume": round(float(np.corrcoef(n, volume)[0, 1]), 3),
            "volume_per_atom": quantiles(volume / n, thresholds=()),
            "density": quantiles(m / volume * 1.66053907, thresholds=()),  # amu/Å^3 -> g/cm^3
        }
    return out


def _manifest_splits(checkpoint: Path | None) -> str | None:
    """The training splits a checkpoint's manifest names (``<name>.manifest.json`` beside it), if it has one."""
    import json

    if checkpoint is None:
        return None
    manifest = checkpoint.with_name(checkpoint.stem + ".manifest.json")
    return json.loads(manifest.read_text()).get("splits") if manifest.exists() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mp20", choices=sorted(TRAIN_SPLITS))
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--n", type=int, default=300, help="samples per variant")
    parser.add_argument(
        "--encode", type=int, default=300, help="training crystals encoded and decoded for (b)"
    )
    parser.add_argument(
        "--latents", type=int, default=1000, help="latents per source in the decode-only table"
    )
    parser.add_argument("--train-split", default=None,
                        help="the split(s) the checkpoint was trained on, joined by '+' (default: its manifest's, "
                             "else the dataset's usual: " + ", ".join(f"{k} {v}" for k, v in TRAIN_SPLITS.items()) + ")")
    parser.add_argument("--refit-epochs", type=int, default=2000, help="epochs of the lattice head refit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from common import load_average, quantiles, result_header

    from harness.datasets import load_split
    from harness.io import atomic_write_json, sha256_file
    from plugins.symat.data import from_structure
    from plugins.symat.generator import SyMatGenerator
    from plugins.symat.graph import lattice_params
    from plugins.symat.sampling import sample

    torch.set_num_threads(1)
    started = time.perf_counter()
    checkpoint_file = args.checkpoint or SyMatGenerator(args.dataset).default_checkpoint()
    train_split = args.train_split or _manifest_splits(checkpoint_file) or TRAIN_SPLITS[args.dataset]
    train = load_split(args.dataset, train_split, data_dir=args.data_dir)
    test = load_split(args.dataset, "test", data_dir=args.data_dir)
    rng = np.random.default_rng(args.seed)
    test_density = np.array([s.density for s in test.structures])
    train_density = np.array([s.density for s in train.structures])
    test_subset = [test.structures[i] for i in rng.choice(len(test), min(args.n, len(test)), replace=False)]
    data = {
        "train": {
            "structures": len(train),
            "atoms": quantiles([len(s) for s in train.structures], thresholds=()),
            "atom_count_histogram": {
                int(k): int(v) for k, v in sorted(Counter(len(s) for s in train.structures).items())
            },
            "volume_per_atom": quantiles([s.volume / len(s) for s in train.structures], thresholds=()),
            "density": quantiles(train_density, thresholds=()),
        },
        "test": {
            "structures": len(test),
            "volume_per_atom": quantiles([s.volume / len(s) for s in test.structures], thresholds=()),
            "density": quantiles(test_density, thresholds=()),
        },
        f"test subset ({len(test_subset)}, seed {args.seed})": describe(test_subset, quantiles),
    }
    if args.dataset == "perov5":
        data["train"] |= perovskite_counts(train.structures)
        data["test"] |= perovskite_counts(test.structures)

    generator = SyMatGenerator(args.dataset)
    generator.load(args.checkpoint, "cpu")
    shipped = generator.model
    settings = generator._settings()
    crystals = [from_structure(s) for s in train.structures]
    t0 = time.perf_counter()
    mu, logvar = encode(shipped, crystals)
    encode_seconds = time.perf_counter() - t0
    params = lattice_params(torch.stack([c.lattice for c in crystals]).double())
    num_atoms = torch.tensor([len(c.numbers) for c in crystals])
    refit, refit_info = refit_lattice_head(
        shipped, mu, logvar, params, num_atoms, args.refit_epochs, args.seed
    )
    pick = rng.choice(len(crystals), min(args.encode, len(crystals)), replace=False)
    pick_latents = rng.choice(len(crystals), min(args.latents, len(crystals)), replace=False)
    variants = {}
    for name, model in (("shipped", shipped), ("lattice head refit (lattice_scale)", refit)):
        t0 = time.perf_counter()
        samples = sample(model, args.n, args.seed, args.batch_size, settings)
        sample_seconds = time.perf_counter() - t0
        row = {
            "lattice_scale": bool(model.cfg.get("lattice_scale")),
            "lattice_mse_standardised_on_training": lattice_mse(
                model, mu, logvar, params, num_atoms, args.seed
            ),
            "failures": failure_counts(samples, train_density, test_density),
            "samples": describe(samples, quantiles),
            "reconstruction": reconstruction(model, mu[pick], [crystals[i] for i in pick], quantiles),
            "latent_sources_decode_only": latent_sources(
                model, mu[pick_latents], logvar[pick_latents], args.seed, quantiles
            ),
            "sample_seconds": round(sample_seconds, 1),
        }
        if args.dataset == "perov5":
            row["samples"] |= perovskite_counts(samples)
        variants[name] = row
        print(name, row["failures"], row["samples"]["density"], flush=True)
    checkpoint = generator.checkpoint_path
    out = args.out or REPO / "results" / "benchmarks" / f"symat_density_{args.dataset}.json"
    atomic_write_json(
        out,
        {
            **result_header("symat_density", argv),
            "dataset": args.dataset,
            "train_split": train_split,
            "checkpoint": str(checkpoint.resolve().relative_to(REPO))
            if checkpoint.resolve().is_relative_to(REPO)
            else checkpoint.name,
            "checkpoint_sha256": sha256_file(checkpoint),
            "checkpoint_epochs": generator._manifest.get("epochs"),
            "n": args.n,
            "seed": args.seed,
            "batch_size": args.batch_size,
            "langevin": settings.as_dict(),
            "threads": torch.get_num_threads(),
            "load_average": load_average(),
            "encode_seconds": round(encode_seconds, 1),
            "refit": refit_info,
            "data": data,
            "variants": variants,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
