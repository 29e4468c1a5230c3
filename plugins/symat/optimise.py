"""Property optimisation in SyMat's latent space (the optimisation task; CDVAE's ``optimization``, SyMat sec. 4.3).

The starting crystals are encoded, one latent drawn per crystal from the encoder's distribution (as CDVAE's
``encode`` returns a sampled z), and Adam moves the latents along the jointly trained property predictor (down for
"lower", up for "higher") with the model frozen. After each step in ``request.decode_steps`` the current latents are
decoded: composition and lattice from z, coordinates by the same Langevin dynamics as sampling, its noise streams
seeded by (seed, step). What the decodes are worth is for the harness's oracle to say, never this predictor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from plugins.symat.data import collate, from_structure
from plugins.symat.graph import build_multigraph
from plugins.symat.model import SyMat
from plugins.symat.sampling import LangevinSettings, structures_from_latents


def encode_starts(model: SyMat, starts: Sequence, generator: torch.Generator) -> torch.Tensor:
    """One latent per start: mu + sigma * eps with eps from ``generator`` (B, latent)."""
    device = next(model.parameters()).device
    batch = collate([from_structure(s) for s in starts]).to(device)
    graph = build_multigraph(batch.frac, batch.lattices, batch.num_atoms, model.cfg["cutoff"])
    with torch.no_grad():
        mu, logvar = model.vae.encode(batch.numbers, graph, batch.crystal_of_atom, len(starts))
    eps = torch.randn(mu.shape, generator=generator).to(device)
    return mu + eps * torch.exp(0.5 * logvar)


def decode_seed(seed: int, step: int) -> int:
    """The Langevin seed of the decodes after optimiser step ``step``."""
    return int(np.random.SeedSequence([int(seed), int(step), 24]).generate_state(1)[0])


def optimise(model: SyMat, starts: Sequence, request, seed: int, settings: LangevinSettings,
             batch_size: int = 128, progress: bool = False) -> tuple[list[list], list[list[float]]]:
    """Decoded structures per start (``len(request.decode_steps)`` each, ``None`` where a decode failed) and the
    predictor's values of the latents at those steps (what the optimiser saw, recorded for diagnosis only)."""
    from tqdm.auto import tqdm

    if model.property_head is None:
        raise ValueError("this SyMat checkpoint has no latent property predictor; train one with "
                         "`bench train --plugin symat --condition COLUMN --init-from CHECKPOINT`")
    if model.property_name != request.property:
        raise ValueError(f"this SyMat checkpoint predicts {model.property_name!r}, not {request.property!r}")
    sign = 1.0 if request.better == "lower" else -1.0
    generator = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    decodes: list[list] = [[] for _ in starts]
    predicted: list[list[float]] = [[] for _ in starts]
    try:
        z = encode_starts(model, starts, generator).detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([z], lr=request.learning_rate)
        wanted = set(request.decode_steps)
        for step in tqdm(range(request.gradient_steps), desc="optimising latents", disable=not progress):
            optimiser.zero_grad(set_to_none=True)
            loss = sign * model.predict_property(z).mean()
            loss.backward()
            optimiser.step()
            if step in wanted:
                with torch.no_grad():
                    values = model.predict_property(z).tolist()
                    structures = structures_from_latents(model, z.detach(), decode_seed(seed, step), batch_size,
                                                         settings)
                for i, (structure, value) in enumerate(zip(structures, values, strict=True)):
                    decodes[i].append(structure)
                    predicted[i].append(float(value))
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return decodes, predicted
