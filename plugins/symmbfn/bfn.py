"""Bayesian Flow Network arithmetic (Graves et al. 2023, arXiv:2308.07037), continuous time, for two data kinds.

Continuous data (sec. 4): accuracy schedule gamma(t) = 1 - sigma1^(2t); Bayesian flow mu ~ N(gamma x, gamma(1-gamma));
the network predicts the noise, giving x_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat; loss
L(x) = -ln(sigma1) sigma1^(-2t) |x - x_hat|^2. Fractional coordinates take the difference modulo 1 (SymmBFN sec. 3).

Discrete data (sec. 6): beta(t) = beta1 t^2; flow theta = softmax(y), y ~ N(beta (K e_x - 1), beta K I); loss
L(x) = K beta1 t |e_x - p_out|^2. All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch

from plugins._asymmetric.draws import categorical, softmax

T_MIN = 1e-6  # below this time the continuous estimate is the prior mean, 0 (Graves et al. eq. 84)


def wrap(delta: torch.Tensor) -> torch.Tensor:
    """The periodic difference in [-0.5, 0.5)."""
    return delta - torch.round(delta)


def gamma(t: torch.Tensor, sigma1: float) -> torch.Tensor:
    return 1.0 - torch.pow(torch.as_tensor(sigma1, dtype=t.dtype, device=t.device), 2.0 * t)


def continuous_flow(x: torch.Tensor, t: torch.Tensor, sigma1: float, generator: torch.Generator) -> torch.Tensor:
    """Sample the input mean mu from the Bayesian flow distribution at time ``t`` (broadcastable to ``x``)."""
    g = gamma(t, sigma1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return g * x + torch.sqrt(g * (1 - g)) * noise


def continuous_estimate(mu: torch.Tensor, eps_hat: torch.Tensor, t: torch.Tensor, sigma1: float) -> torch.Tensor:
    """x_hat from the network's noise estimate (0 for t < T_MIN)."""
    g = gamma(t, sigma1).clamp_min(1e-12)
    x_hat = mu / g - torch.sqrt((1 - g) / g) * eps_hat
    return torch.where(t < T_MIN, torch.zeros_like(x_hat), x_hat)


def continuous_loss(x, x_hat, t, sigma1: float, periodic: bool = False) -> torch.Tensor:
    """Per-element continuous-time loss (sum it over the data dimensions)."""
    delta = wrap(x - x_hat) if periodic else x - x_hat
    return -math.log(sigma1) * torch.pow(torch.as_tensor(sigma1, dtype=t.dtype, device=t.device), -2.0 * t) * delta**2


def continuous_sender_step(mu, rho, x_hat, step: int, n_steps: int, sigma1: float, generator):
    """One sampling step i (1-based): draw y ~ N(x_hat, 1/alpha_i) and update (mu, rho) by Bayes (alg. 3)."""
    alpha = sigma1 ** (-2.0 * step / n_steps) * (1 - sigma1 ** (2.0 / n_steps))
    y = x_hat + torch.randn(x_hat.shape, generator=generator, device=x_hat.device, dtype=x_hat.dtype) / math.sqrt(alpha)
    new_rho = rho + alpha
    return (rho * mu + alpha * y) / new_rho, new_rho


def discrete_flow(x_index: torch.Tensor, num_classes: int, t: torch.Tensor, beta1: float, generator) -> torch.Tensor:
    """Sample input probabilities theta from the discrete Bayesian flow (``t`` broadcastable to ``x_index``)."""
    beta = (beta1 * t**2).unsqueeze(-1)
    one_hot = torch.nn.functional.one_hot(x_index, num_classes).to(beta.dtype)
    noise = torch.randn(one_hot.shape, generator=generator, device=one_hot.device, dtype=one_hot.dtype)
    y = beta * (num_classes * one_hot - 1) + torch.sqrt(beta * num_classes) * noise
    return softmax(y)


def discrete_loss(x_index, probs, t, beta1: float) -> torch.Tensor:
    """Per-variable continuous-time loss K beta1 t |e_x - p|^2 (``t`` broadcastable to ``x_index``)."""
    num_classes = probs.shape[-1]
    one_hot = torch.nn.functional.one_hot(x_index, num_classes).to(probs.dtype)
    return num_classes * beta1 * t * ((one_hot - probs) ** 2).sum(-1)


def discrete_sender_step(theta, probs, step: int, n_steps: int, beta1: float, generator):
    """One sampling step i (1-based): draw a class from the output, a noisy count vector from it, update (alg. 9)."""
    num_classes = probs.shape[-1]
    alpha = beta1 * (2 * step - 1) / n_steps**2
    flat = probs.reshape(-1, num_classes).clamp_min(1e-12)
    k = categorical(flat, generator).reshape(probs.shape[:-1])
    one_hot = torch.nn.functional.one_hot(k, num_classes).to(probs.dtype)
    noise = torch.randn(one_hot.shape, generator=generator, device=one_hot.device, dtype=one_hot.dtype)
    y = alpha * (num_classes * one_hot - 1) + math.sqrt(alpha * num_classes) * noise
    return softmax(torch.log(theta.clamp_min(1e-30)) + y)
