"""Training SymmCD with the shared asymmetric-unit training loop (``plugins._asymmetric.training``).

``out_dir`` receives ``last.pt`` (everything needed to resume), ``model.pt`` (the shipped format), ``manifest.json``,
``loss.csv`` and ``loss.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins._asymmetric import training as shared
from plugins._asymmetric.batching import make_batch
from plugins.symmcd.config import Preset, get_preset
from plugins.symmcd.model import SymmCD, SymmCDStats

COMPONENTS = ("total", "lattice", "coords", "types", "symmetry")
CHECKPOINT_FORMAT = "symmcd-checkpoint-1"

KIND = shared.ModelKind(
    generator="symmcd",
    checkpoint_format=CHECKPOINT_FORMAT,
    components=COMPONENTS,
    get_preset=get_preset,
    preset_from_dict=Preset.from_dict,
    make_stats=SymmCDStats.from_packed,
    stats_to_dict=SymmCDStats.to_dict,
    stats_from_dict=SymmCDStats.from_dict,
    build=lambda preset, stats: SymmCD(preset.network, preset.diffusion, stats),
    make_batch=lambda packed, stats, device: make_batch(packed, stats.data, device),
)


def build_model(preset: Preset, stats: SymmCDStats, seed: int) -> SymmCD:
    """A freshly initialised model (seeded, global RNG state untouched)."""
    return shared.build_model(KIND, preset, stats, seed)


def load_model_file(path: Path, device: str = "cpu") -> tuple[SymmCD, dict]:
    """(model in eval mode, manifest) from a ``model.pt``/``last.pt``/shipped checkpoint."""
    return shared.load_model_file(KIND, path, device)


def train(split, config: dict[str, Any], out_dir: Path, seed: int, log=print):
    """Train on a harness ``Split``; returns ``harness.generator.TrainResult`` (checkpoint = ``model.pt``)."""
    return shared.train(KIND, split, config, out_dir, seed, log)
