"""``SymmBFNGenerator``: the harness's view of SymmBFN (train, load, sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.generator import Generator, TrainResult, resolve_device

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_STEPS = 100


def structures_from_arrays(arrays: dict) -> list:
    """Build each generated crystal (project, snap, replicate); ``None`` for one that cannot be built."""
    from plugins._asymmetric import build_structure

    out = []
    for i in range(len(arrays["space_group"])):
        keep = arrays["node_mask"][i]
        try:
            out.append(build_structure(int(arrays["space_group"][i]), arrays["k"][i], arrays["atomic_numbers"][i][keep],
                                       arrays["frac_coords"][i][keep], arrays["site_symmetry"][i][keep]))
        except Exception:  # an unbuildable sample counts as invalid, never as a crash
            out.append(None)
    return out


class SymmBFNGenerator(Generator):
    """Symmetry-aware Bayesian Flow Network over the asymmetric unit (space group, lattice k, representatives)."""

    name = "symmbfn"
    version = "0.1.0"

    def __init__(self, dataset: str, n_steps: int = DEFAULT_STEPS):
        super().__init__(dataset)
        self.n_steps = n_steps
        self.model = None
        self.manifest: dict = {}
        self.device = "cpu"

    def train(self, dataset, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
        from plugins.symmbfn.training import load_model_file, train

        result = train(dataset, config, Path(out_dir), seed)
        self.device = resolve_device(config.get("device"))
        self.model, self.manifest = load_model_file(result.checkpoint, self.device)
        self.checkpoint_path = result.checkpoint
        return result

    def default_checkpoint(self) -> Path | None:
        path = CHECKPOINT_DIR / f"{self.dataset}.pt"
        return path if path.exists() else None

    def load(self, checkpoint: Path | None = None, device: str | None = None) -> None:
        from plugins.symmbfn.training import load_model_file

        path = Path(checkpoint) if checkpoint else self.default_checkpoint()
        if path is None:
            raise FileNotFoundError(f"no shipped SymmBFN checkpoint for {self.dataset!r} in {CHECKPOINT_DIR}")
        self.device = resolve_device(device)
        self.model, self.manifest = load_model_file(path, self.device)
        self.checkpoint_path = path

    def sample(self, n: int, seed: int, batch_size: int = 256, prop: float | None = None) -> list:
        """``n`` structures (``None`` where one could not be built); identical for equal (n, seed, batch_size)."""
        import torch

        if self.model is None:
            self.load(None, self.device)
        rng = np.random.default_rng(seed)
        groups, sizes = self.model.stats.sample_groups_and_sizes(n, rng)
        sizes = np.maximum(sizes, 1)
        out: list = []
        for batch_index, begin in enumerate(range(0, n, batch_size)):
            generator = torch.Generator(device=self.device).manual_seed(int(seed) * 1_000_003 + batch_index)
            sl = slice(begin, begin + batch_size)
            prop_t = None
            if prop is not None:
                prop_t = torch.full((len(groups[sl]),), float(prop), device=self.device)
            arrays = self.model.generate(groups[sl], sizes[sl], self.n_steps, generator, prop_t)
            out.extend(structures_from_arrays(arrays))
        return out

    def sampling_settings(self) -> dict[str, Any]:
        return {"steps": self.n_steps, "space_group_prior": "training marginal",
                "size_prior": "training distribution given the space group"}

    def training_splits(self) -> list[str] | None:
        splits = self.manifest.get("splits")
        return splits.split("+") if splits else None
