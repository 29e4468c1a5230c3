"""SymmBFN hyperparameters: the network, the Bayesian flows, training; two presets.

The paper's appendix A.3 fixes hidden 512, embedding 128, 6 layers, Adam at 1e-3, batch 256, 2000 epochs and a
reduce-on-plateau schedule (factor 0.6, patience 100, min 1e-4). Its sigma1 / beta1 values and loss weights were
lost in the text extraction available here; the values below are ours, chosen so that each flow is nearly fully
informative at t = 1 (sigma1 = 0.01; beta1 K ~ 20 as in Graves et al.'s text8 setting scaled to K), weights 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from plugins._asymmetric.presets import OptimConfig, select_preset

NUM_TYPES = 100  # atomic numbers 1..100 as classes 0..99


@dataclass(frozen=True)
class NetworkConfig:
    hidden: int = 512
    layers: int = 6
    embedding: int = 128  # time, space-group and property embeddings
    edge_frequencies: int = 8  # Fourier features of coordinate-mean differences
    node_frequencies: int = 4  # Fourier features of each coordinate mean (absolute position; see network.py)
    property_conditioning: bool = False


@dataclass(frozen=True)
class FlowConfig:
    sigma1_coords: float = 0.01
    sigma1_lattice: float = 0.01
    beta1_types: float = 0.2  # K = 100
    beta1_ops: float = 1.5  # K = 13
    weight_coords: float = 1.0
    weight_lattice: float = 1.0
    weight_types: float = 1.0
    weight_ops: float = 1.0


@dataclass(frozen=True)
class Preset:
    name: str
    network: NetworkConfig = field(default_factory=NetworkConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preset:
        return cls(data["name"], NetworkConfig(**data["network"]), FlowConfig(**data["flow"]), OptimConfig(**data["optim"]))


PRESETS = {
    "paper": Preset("paper"),
    # Small enough for a 2-core CPU: ~0.4 M parameters, patience scaled down with the epoch budget.
    "cpu": Preset(
        "cpu",
        NetworkConfig(hidden=128, layers=4, embedding=64),
        FlowConfig(),
        OptimConfig(batch_size=128, max_epochs=400, plateau_patience=15, checkpoint_minutes=3.0),
    ),
    # The cpu network with the property embedding (issue 24): fine-tuned from the unconditional cpu checkpoint
    # (`bench train --condition formation_energy_per_atom --init-from ...`), so a lower learning rate and floor.
    "cpu-conditional": Preset(
        "cpu-conditional",
        NetworkConfig(hidden=128, layers=4, embedding=64, property_conditioning=True),
        FlowConfig(),
        OptimConfig(lr=3e-4, batch_size=128, max_epochs=2000, plateau_patience=15, min_lr=5e-5,
                    checkpoint_minutes=3.0),
    ),
    # For tests only.
    "tiny-conditional": Preset(
        "tiny-conditional",
        NetworkConfig(hidden=16, layers=1, embedding=8, edge_frequencies=2, node_frequencies=2,
                      property_conditioning=True),
        FlowConfig(),
        OptimConfig(batch_size=8, max_epochs=1, plateau_patience=1, checkpoint_minutes=3.0),
    ),
    "tiny": Preset(
        "tiny",
        NetworkConfig(hidden=16, layers=1, embedding=8, edge_frequencies=2, node_frequencies=2),
        FlowConfig(),
        OptimConfig(batch_size=8, max_epochs=1, plateau_patience=1, checkpoint_minutes=3.0),
    ),
}


def get_preset(name: str, batch_size: int | None = None) -> Preset:
    """A named preset, optionally with another batch size."""
    return select_preset(PRESETS, name, batch_size)
