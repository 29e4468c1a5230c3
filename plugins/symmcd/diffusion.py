"""The four noise processes of SymmCD (paper sec. 4.3, app. D), as tensor arithmetic with explicit generators.

- lattice ``k``: DDPM (Ho et al. 2020) with Nichol & Dhariwal's cosine schedule; the network predicts the noise;
- fractional coordinates: wrapped-normal score diffusion with a geometric sigma schedule (DiffCSP, Jiao et al. 2023);
  the network predicts the normalised score of the wrapped normal;
- atom types and each of the 15 site-symmetry axes: discrete diffusion (Austin et al. 2021) whose transition
  matrices ``Q_t = a_t I + (1 - a_t) 1 m^T`` converge to the data marginals ``m`` (Vignac et al. 2023); the network
  predicts the clean class, sampling uses the exact posterior ``q(x_{t-1} | x_t, x_0)`` averaged over that prediction.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from plugins._asymmetric.draws import categorical

WRAP_IMAGES = 10  # periodic images summed in the wrapped-normal density (DiffCSP uses 10)


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> np.ndarray:
    """Cumulative signal fraction, index 0 (clean) to T; betas clipped at 0.999 as in Nichol & Dhariwal."""
    t = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    return np.concatenate([[1.0], np.cumprod(1 - betas)])


def wrapped_normal_neg_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``-d/dx log p(x)`` of the wrapped normal WN(0, sigma^2) on the unit circle (what the network regresses)."""
    images = torch.arange(-WRAP_IMAGES, WRAP_IMAGES + 1, device=x.device, dtype=x.dtype)
    shifted = x[..., None] + images
    sig = sigma[..., None]
    weights = torch.softmax(-shifted**2 / (2 * sig**2), dim=-1)
    return (weights * shifted).sum(-1) / sigma**2


def score_norm(sigma: float) -> float:
    """``E[(neg score)^2]`` under WN(0, sigma^2): the per-sigma normaliser of the coordinate loss (DiffCSP).

    For sigma < 0.02 the wrap is negligible (25 sigma to the next image) and the Gaussian value 1/sigma^2 is exact
    to machine precision; otherwise a 4001-point quadrature over one period.
    """
    if sigma < 0.02:
        return 1.0 / sigma**2
    x = np.linspace(-0.5, 0.5, 4001)[:-1]
    shifted = x[:, None] + np.arange(-WRAP_IMAGES, WRAP_IMAGES + 1)
    dens = np.exp(-shifted**2 / (2 * sigma**2))
    p = dens.sum(1)
    neg_score = (dens * shifted).sum(1) / p / sigma**2
    return float((p * neg_score**2).sum() / p.sum())


class Schedules:
    """Every per-step constant, as float32 tensors indexed by t = 0..T (0 = clean)."""

    def __init__(self, timesteps: int, cosine_s: float, sigma_begin: float, sigma_end: float):
        self.timesteps = timesteps
        alpha_bar = cosine_alpha_bar(timesteps, cosine_s)
        beta = np.concatenate([[0.0], 1 - alpha_bar[1:] / alpha_bar[:-1]])
        steps = np.arange(timesteps + 1)
        sigma = sigma_begin * (sigma_end / sigma_begin) ** ((steps - 1) / max(timesteps - 1, 1))
        sigma[0] = 0.0
        norm = np.array([1.0] + [score_norm(s) for s in sigma[1:]])

        def t32(a):
            return torch.as_tensor(a, dtype=torch.float32)

        self.alpha_bar, self.beta, self.sigma, self.sigma_norm = t32(alpha_bar), t32(beta), t32(sigma), t32(norm)

    def to(self, device) -> Schedules:
        for name in ("alpha_bar", "beta", "sigma", "sigma_norm"):
            setattr(self, name, getattr(self, name).to(device))
        return self


# ---------------------------------------------------------------- discrete diffusion towards the marginals

def sample_categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One class index per row of ``probs`` (..., K)."""
    return categorical(probs.clamp_min(0), generator)


def noised_categorical(x0: torch.Tensor, alpha_bar: torch.Tensor, marginals: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
    """``x_t ~ q(x_t | x_0) = alpha_bar e_{x0} + (1 - alpha_bar) m``; ``alpha_bar`` broadcastable to ``x0``."""
    k = marginals.shape[-1]
    a = alpha_bar[..., None]
    probs = a * torch.nn.functional.one_hot(x0, k).to(marginals.dtype) + (1 - a) * marginals
    return sample_categorical(probs, generator)


def posterior(xt: torch.Tensor, p0: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              marginals: torch.Tensor) -> torch.Tensor:
    """``p(x_{t-1} | x_t) = sum_c p0(c) q(x_{t-1} | x_t, x_0 = c)`` for the marginal transition matrices.

    With ``Q_t[i, j] = a_t d_ij + (1 - a_t) m_j`` and ``Qbar_t[c, j] = abar_t d_cj + (1 - abar_t) m_j``:
    ``p(i) = Q_t[i, j] sum_c p0(c) Qbar_{t-1}[c, i] / Qbar_t[c, j]``. Shapes: xt (...), p0/marginals (..., K),
    the alpha tensors broadcastable to ``xt``.
    """
    k = p0.shape[-1]
    a_t = (alpha_bar_t / alpha_bar_prev)[..., None]
    ab_t, ab_prev = alpha_bar_t[..., None], alpha_bar_prev[..., None]
    onehot = torch.nn.functional.one_hot(xt, k).to(p0.dtype)
    m_j = marginals.gather(-1, xt[..., None])  # (..., 1)
    forward = a_t * onehot + (1 - a_t) * m_j  # Q_t[i, j] over i
    w = p0 / (ab_t * onehot + (1 - ab_t) * m_j).clamp_min(1e-12)  # p0(c) / Qbar_t[c, j]
    back = ab_prev * w + (1 - ab_prev) * marginals * w.sum(-1, keepdim=True)
    probs = forward * back
    return probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
