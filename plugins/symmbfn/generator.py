"""``SymmBFNGenerator``: the harness's view of SymmBFN (train, load, sample)."""

from __future__ import annotations

from typing import Any

import numpy as np

from plugins._asymmetric import structures_from_arrays
from plugins._asymmetric.generator import AsymmetricGenerator

DEFAULT_STEPS = 100


class SymmBFNGenerator(AsymmetricGenerator):
    """Symmetry-aware Bayesian Flow Network over the asymmetric unit (space group, lattice k, representatives)."""

    name = "symmbfn"
    version = "0.1.0"
    training_module = "plugins.symmbfn.training"
    label = "SymmBFN"

    def __init__(self, dataset: str, n_steps: int = DEFAULT_STEPS):
        super().__init__(dataset)
        self.n_steps = n_steps

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
