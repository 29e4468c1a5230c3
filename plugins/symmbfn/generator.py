"""``SymmBFNGenerator``: the harness's view of SymmBFN (train, load, sample)."""

from __future__ import annotations

from typing import Any

import numpy as np

from plugins._asymmetric import structures_from_arrays
from plugins._asymmetric.batching import size_batches
from plugins._asymmetric.generator import AsymmetricGenerator
from plugins.symmbfn import VERSION
from plugins.symmbfn.config import NUM_TYPES

DEFAULT_STEPS = 100


class SymmBFNGenerator(AsymmetricGenerator):
    """Symmetry-aware Bayesian Flow Network over the asymmetric unit (space group, lattice k, representatives)."""

    name = "symmbfn"
    version = VERSION
    training_module = "plugins.symmbfn.training"
    label = "SymmBFN"

    def __init__(self, dataset: str, n_steps: int = DEFAULT_STEPS, avoid_occupied: bool = True):
        super().__init__(dataset)
        self.n_steps = n_steps
        # 0.2.0: a representative whose orbit would land on atoms already placed takes the nearest free Wyckoff
        # position of the same site symmetry (issue 22: 13 % of 0.1.0's MP-20 samples had two orbits on one point)
        self.avoid_occupied = avoid_occupied

    def sample(self, n: int, seed: int, batch_size: int = 256, prop: float | None = None) -> list:
        """``n`` structures (``None`` where one could not be built); identical for equal (n, seed, batch_size).

        Draws are sorted by size into model batches within a pair budget (``size_batches``), returned in draw order.
        """
        import torch

        if self.model is None:
            self.load(None, self.device)
        rng = np.random.default_rng(seed)
        groups, sizes = self.model.stats.sample_groups_and_sizes(n, rng)
        sizes = np.maximum(sizes, 1)
        out: list = [None] * n
        for batch_index, index in enumerate(size_batches(sizes, batch_size)):
            generator = torch.Generator(device=self.device).manual_seed(int(seed) * 1_000_003 + batch_index)
            prop_t = None if prop is None else torch.full((len(index),), float(prop), device=self.device)
            arrays = self.model.generate(groups[index], sizes[index], self.n_steps, generator, prop_t)
            for position, structure in zip(index, structures_from_arrays(arrays, avoid_occupied=self.avoid_occupied), strict=True):
                out[position] = structure
        return out

    def sample_conditional(self, n: int, target, seed: int, batch_size: int = 256) -> list:
        """``n`` structures conditioned on ``target`` (formation energy per atom, eV/atom): the same draws of space
        group and size as :meth:`sample` for the seed, with the target fed to the network's property embedding
        (SymmBFN sec. 3.1). Needs a conditional checkpoint (``<dataset>-conditional.pt``)."""
        if self.model is None:
            self.load(self.default_task_checkpoint("conditional"), self.device)
        if not self.model.net.config.property_conditioning:
            raise ValueError(f"the loaded SymmBFN checkpoint ({getattr(self, 'checkpoint_path', '?')}) takes no "
                             "property; load a conditional one (bench train --condition ...)")
        if target.property not in self.conditioned_on():
            raise ValueError(f"this checkpoint is conditioned on {self.conditioned_on() or 'nothing'}, not "
                             f"{target.property!r}")
        return self.sample(n, seed, batch_size, prop=float(target.value))

    def conditioned_on(self) -> tuple[str, ...]:
        """The property the loaded checkpoint was trained with (its manifest's ``condition``), if any."""
        condition = (self.manifest or {}).get("condition") or {}
        return (condition["property"],) if condition.get("property") else ()

    def sampling_settings(self) -> dict[str, Any]:
        mask = self.model.stats.type_mask(NUM_TYPES) if self.model is not None else None
        return {"steps": self.n_steps, "space_group_prior": "training marginal",
                "size_prior": "training distribution given the space group",
                "element_mask": (f"the {int(mask.sum())} elements of the training data" if mask is not None
                                 else "none (the checkpoint holds no element counts)"),
                "occupied_positions": ("the nearest free Wyckoff position of the same site symmetry"
                                       if self.avoid_occupied else "as generated"),
                **({"conditioned_on": list(self.conditioned_on())} if self.conditioned_on() else {})}
