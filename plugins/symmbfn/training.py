"""Training SymmBFN with the shared asymmetric-unit training loop (``plugins._asymmetric.training``).

``out_dir`` receives ``last.pt`` (everything needed to resume), ``model.pt`` (the shipped format), ``manifest.json``,
``loss.csv`` and ``loss.png``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from plugins._asymmetric import training as shared
from plugins._asymmetric.batching import DataStats, make_batch
from plugins.symmbfn.config import Preset, get_preset
from plugins.symmbfn.model import SymmBFN

COMPONENTS = ("total", "coords", "lattice", "types", "ops")
CHECKPOINT_FORMAT = "symmbfn-checkpoint-1"


def stats_from_dict(data: dict) -> DataStats:
    """``DataStats`` from its saved dict (lists back to the tuples the frozen dataclass holds)."""
    def tupled(value):
        return tuple(tupled(v) for v in value) if isinstance(value, list | tuple) else value

    return DataStats(**{k: tupled(v) for k, v in data.items()})


KIND = shared.ModelKind(
    generator="symmbfn",
    checkpoint_format=CHECKPOINT_FORMAT,
    components=COMPONENTS,
    get_preset=get_preset,
    preset_from_dict=Preset.from_dict,
    make_stats=DataStats.from_packed,
    stats_to_dict=asdict,
    stats_from_dict=stats_from_dict,
    build=lambda preset, stats: SymmBFN(preset.network, preset.flow, stats),
    make_batch=make_batch,
)


def build_model(preset: Preset, stats: DataStats, seed: int) -> SymmBFN:
    """A freshly initialised model (seeded, global RNG state untouched)."""
    return shared.build_model(KIND, preset, stats, seed)


def load_model_file(path: Path, device: str = "cpu") -> tuple[SymmBFN, dict]:
    """(model in eval mode, manifest) from a ``model.pt``/``last.pt``/shipped checkpoint."""
    return shared.load_model_file(KIND, path, device)


def train(split, config: dict[str, Any], out_dir: Path, seed: int, log=print):
    """Train on a harness ``Split``; returns ``harness.generator.TrainResult`` (checkpoint = ``model.pt``)."""
    return shared.train(KIND, split, config, out_dir, seed, log)
