"""Optimiser settings and preset lookup shared by the asymmetric-unit generators (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class OptimConfig:
    """Adam with reduce-on-plateau (SymmBFN app. A.3's values as defaults), time-boxed checkpoints."""

    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 2000
    plateau_factor: float = 0.6
    plateau_patience: int = 100  # epochs
    min_lr: float = 1e-4
    grad_clip: float = 10.0
    checkpoint_minutes: float = 3.0


def select_preset(presets: dict[str, Any], name: str, batch_size: int | None = None):
    """``presets[name]``, optionally with another batch size; a clear error for an unknown name."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(presets)}")
    preset = presets[name]
    if batch_size:
        preset = replace(preset, optim=replace(preset.optim, batch_size=int(batch_size)))
    return preset
