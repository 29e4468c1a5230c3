"""``SymmCDGenerator``: the harness's view of SymmCD (train, load, sample)."""

from __future__ import annotations

from typing import Any

import numpy as np

from plugins._asymmetric import structures_from_arrays
from plugins._asymmetric.batching import size_batches
from plugins._asymmetric.generator import AsymmetricGenerator
from plugins.symmcd import VERSION


class SymmCDGenerator(AsymmetricGenerator):
    """Symmetry-preserving diffusion over the asymmetric unit (space group, lattice k, representatives)."""

    name = "symmcd"
    version = VERSION
    training_module = "plugins.symmcd.training"
    label = "SymmCD"

    def __init__(self, dataset: str, corrector_step: float | None = None):
        super().__init__(dataset)
        self.corrector_step = corrector_step  # None: the preset's

    def sample(self, n: int, seed: int, batch_size: int = 256) -> list:
        """``n`` structures (``None`` where one could not be built); identical for equal (n, seed, batch_size).

        Space groups come from the training marginal and representative counts from their distribution given the
        group; crystals are sorted by size and cut into model batches (``size_batches``), and results return
        in draw order.
        """
        import torch
        from tqdm.auto import tqdm

        if self.model is None:
            self.load(None, self.device)
        rng = np.random.default_rng(seed)
        groups, sizes = self.model.stats.data.sample_groups_and_sizes(n, rng)
        sizes = np.maximum(sizes, 1)
        batches = size_batches(sizes, batch_size)
        out: list = [None] * n
        steps = self.model.diffusion.timesteps
        with tqdm(total=steps * len(batches), desc="symmcd denoising", unit="step", leave=False,
                  disable=not self.progress) as bar:
            for batch_index, index in enumerate(batches):
                generator = torch.Generator(device=self.device).manual_seed(int(seed) * 1_000_003 + batch_index)
                arrays = self.model.generate(groups[index], sizes[index], generator, self.corrector_step, bar.update)
                for position, structure in zip(index, structures_from_arrays(arrays), strict=True):
                    out[position] = structure
        return out

    def sampling_settings(self) -> dict[str, Any]:
        d = self.model.diffusion if self.model is not None else None
        return {"steps": d.timesteps if d else None,
                "corrector_step": self.corrector_step if self.corrector_step is not None else (d.corrector_step if d else None),
                "space_group_prior": "training marginal",
                "size_prior": "training distribution given the space group"}
