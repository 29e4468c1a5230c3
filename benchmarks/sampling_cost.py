"""Seconds per sample of the shipped generators, measured back to back on the same machine, thread count and batch.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/sampling_cost.py --dataset perov5 --n 250

Each plugin loads its shipped checkpoint for ``--dataset`` and generates ``--n`` samples (seed 0) in one batch of
``--batch-size`` on one torch thread; the wall time covers the model and the rebuilding of structures. Plugins run
in turn, so they see the same machine load as far as one can arrange; the load average is recorded beside each.
One-off costs (every space group's tables, a first two-sample draw per plugin) are paid before either is
timed and recorded apart, and each row splits its time into the network's calls and everything else.
Writes ``results/benchmarks/sampling_cost_<dataset>.json``. (The SymmBFN paper reports SymmBFN ~70x cheaper per
sample than SymmCD on a GPU.)

``--preset paper`` times the papers' network sizes instead (SymmBFN 512 x 6; SymmCD 1024 x 8 with 128 distance
frequencies), which cannot be trained here: each plugin's shipped checkpoint gives its data statistics and priors
(space groups, sizes, elements), its network is replaced by a seeded random initialisation of the paper preset, and
the same sampler runs. The cost of a network evaluation does not depend on its weights, only on the sizes drawn;
what is built from random weights is not evaluated, only timed. Writes ``sampling_cost_<dataset>_paper.json``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class NetworkTimer:
    """Counts and times the calls of a generator's network (``model.net``) while it samples, with forward hooks.

    A sampler's cost is the network calls each sample takes part in times their cost, plus everything else it does
    (its own arithmetic and the building of structures); the split tells which one a cheaper sampler must shrink.
    A call on a batch of B crystals counts as one call for each of the B.
    """

    def __init__(self, module):
        self.module, self.calls, self.rows, self.seconds, self._handles, self._start = module, 0, 0, 0.0, [], None

    def __enter__(self):
        if self.module is not None:
            self._handles = [self.module.register_forward_pre_hook(self._pre, with_kwargs=True),
                             self.module.register_forward_hook(self._post)]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _pre(self, module, args, kwargs):
        first = kwargs["space_group"] if "space_group" in kwargs else args[0]
        self.rows += int(first.shape[0])
        self._start = time.perf_counter()

    def _post(self, module, args, output):
        self.calls += 1
        self.seconds += time.perf_counter() - self._start

    def summary(self, n: int, total_seconds: float) -> dict:
        if self.module is None:
            return {}
        return {"network_calls": self.calls, "network_calls_per_sample": round(self.rows / n, 1),
                "network_seconds": round(self.seconds, 2), "network_seconds_per_sample": round(self.seconds / n, 5),
                "other_seconds": round(total_seconds - self.seconds, 2)}


def warm_up(generators: dict, seed: int) -> dict:
    """Pay the one-off costs before any plugin is timed, and say what they cost.

    SymmBFN and SymmCD share per-space-group tables (pyxtal's Wyckoff positions and site symmetries, the orbit
    operations) cached in the process; whichever plugin ran first paid for all of them and the other ran on a warm cache.
    Every group's tables are built first, then each plugin draws two samples (lazy imports, first calls), untimed
    in the rows.
    """
    from plugins._asymmetric.orbits import orbit_tables
    from plugins._asymmetric.representation import group_tables

    start = time.perf_counter()
    for group in range(1, 231):  # SymmCD's space-group encodings are built with its network, at load
        group_tables(group)
        orbit_tables(group)
    setup = {"space_group_tables_230_groups_s": round(time.perf_counter() - start, 2)}
    for name, generator in generators.items():
        start = time.perf_counter()
        generator.sample(2, seed + 1, 2)
        setup[f"{name}_two_samples_s"] = round(time.perf_counter() - start, 2)
    return setup


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="perov5")
    parser.add_argument("--plugins", default="symmbfn,symmcd")
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default=None, help="time this network preset, randomly initialised (e.g. paper)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from common import result_header

    torch.set_num_threads(1)
    from harness.io import atomic_write_json, sha256_file
    from harness.registry import get_registry

    registry = get_registry()
    generators = {}
    for name in args.plugins.split(","):
        generator = registry.generator(name, args.dataset)
        generator.load(None, "cpu")
        if args.preset:
            training = importlib.import_module(generator.training_module)
            generator.model = training.build_model(training.KIND.get_preset(args.preset), generator.model.stats, 0).eval()
        if hasattr(generator, "progress"):
            generator.progress = False
        generators[name] = generator
    setup = warm_up(generators, args.seed)
    print("one-off set-up, not timed per sample:", setup, flush=True)
    rows = []
    for name, generator in generators.items():
        load_before = os.getloadavg()
        network = NetworkTimer(getattr(generator.model, "net", None))
        start = time.perf_counter()
        with network:
            samples = generator.sample(args.n, args.seed, args.batch_size)
        seconds = time.perf_counter() - start
        rows.append({
            "plugin": name, "checkpoint": str(Path(generator.checkpoint_path).relative_to(REPO)),
            "checkpoint_sha256": sha256_file(generator.checkpoint_path),
            "epochs": None if args.preset else generator.manifest.get("epochs"),
            "network": {"preset": args.preset or generator.manifest.get("preset"),
                        "weights": "random (seed 0)" if args.preset else "trained",
                        "parameters": sum(p.numel() for p in generator.model.parameters())},
            "sampling_settings": generator.sampling_settings(),
            "n": args.n, "built": sum(s is not None for s in samples),
            "mean_atoms_built": round(sum(len(s) for s in samples if s is not None)
                                      / max(sum(s is not None for s in samples), 1), 2),
            "seconds": round(seconds, 2),
            "seconds_per_sample": round(seconds / args.n, 4),
            **network.summary(args.n, seconds),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        })
        print(rows[-1], flush=True)
    by_name = {r["plugin"]: r for r in rows}
    ratio = bounds = None
    if {"symmbfn", "symmcd"} <= set(by_name):
        bfn, cd = by_name["symmbfn"], by_name["symmcd"]
        ratio = round(cd["seconds_per_sample"] / bfn["seconds_per_sample"], 1)
        if bfn.get("network_calls_per_sample") and cd.get("network_calls_per_sample"):
            bounds = {
                "network_calls": round(cd["network_calls_per_sample"] / bfn["network_calls_per_sample"], 1),
                "network_seconds": round(cd["network_seconds_per_sample"] / bfn["network_seconds_per_sample"], 1),
                "if_symmbfn_cost_only_its_network": round(cd["seconds_per_sample"] / bfn["network_seconds_per_sample"], 1),
                "reading": "the SymmCD/SymmBFN ratio of network calls per sample, of network seconds per sample, and "
                           "the ratio SymmBFN would reach if everything outside its network cost nothing",
            }
    result = {
        **result_header("sampling_cost", argv),
        "description": f"seconds per sample, {args.preset} preset with random weights and the shipped checkpoints' "
        "priors, back to back" if args.preset else "seconds per sample of shipped checkpoints, back to back",
        "preset": args.preset,
        "dataset": args.dataset, "seed": args.seed, "batch_size": args.batch_size, "torch_threads": 1,
        "one_off_setup": setup,
        "rows": rows, "symmcd_over_symmbfn": ratio, "symmcd_over_symmbfn_network": bounds,
        "paper": "SymmBFN paper: 0.007 s/sample (SymmBFN) vs 0.514 (SymmCD) on an RTX A5000, ~70x",
    }
    suffix = f"_{args.preset}" if args.preset else ""
    out = args.out or REPO / "results" / "benchmarks" / f"sampling_cost_{args.dataset}{suffix}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
