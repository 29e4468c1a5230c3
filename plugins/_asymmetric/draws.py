"""Categorical draws and the softmax shared by the asymmetric-unit samplers (SymmBFN's sender steps, SymmCD's posteriors)."""

from __future__ import annotations

import torch


def categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One class index per row of ``probs`` (..., K), non-negative and not necessarily normalised.

    Inverse-CDF sampling: one uniform per row, where ``torch.multinomial`` draws K exponentials per row (on a CPU
    that was a tenth of SymmBFN's sampling time). A class of probability 0 is never drawn.
    """
    flat = probs.reshape(-1, probs.shape[-1])
    cdf = flat.cumsum(-1)
    u = torch.rand((flat.shape[0], 1), generator=generator, device=flat.device, dtype=flat.dtype) * cdf[:, -1:]
    index = torch.searchsorted(cdf, u, right=True)
    # u rounded up to the total would fall past the last class of positive probability: take that class
    last = flat.shape[-1] - 1 - torch.argmax(torch.flip(flat > 0, (-1,)).to(torch.uint8), dim=-1, keepdim=True)
    return torch.minimum(index, last).reshape(probs.shape[:-1])


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, written out: torch's CPU kernel vectorises along that dimension and is ~4x
    slower on SymmBFN's (..., 15 axes, 13 operations) site symmetries; masked (-inf) entries get 0."""
    e = torch.exp(x - x.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)
