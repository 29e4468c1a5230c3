"""SymmCD hyperparameters: the denoiser, the four diffusion processes, training; presets ``paper``, ``cpu``, ``tiny``.

Paper (app. E.2): 8 layers, representation 1024, 128 distance frequencies, a 10-dimensional time embedding, layer
norm. Its loss coefficients were lost in the text extraction available here; we use the values of the authors'
public configuration (lattice 1, coordinates 1, atom types 1, site symmetries 10). The wrapped-normal sigma range
(0.005 to 0.5) and the corrector step are DiffCSP's (Jiao et al. 2023), which SymmCD follows for coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from plugins._asymmetric.presets import OptimConfig, select_preset

NUM_TYPES = 100  # atomic numbers 1..100 as classes 0..99


@dataclass(frozen=True)
class NetworkConfig:
    hidden: int = 1024
    layers: int = 8
    time_dim: int = 10  # sinusoidal time embedding (app. E.2)
    sg_dim: int = 128  # MLP embedding of the binary space-group representation
    axis_dim: int = 16  # per-axis site-symmetry embedding, shared over the 15 axes (app. E.1)
    edge_frequencies: int = 128  # Fourier features of coordinate differences (app. E.2)
    node_frequencies: int = 4  # Fourier features of each absolute coordinate ("we directly use coordinates x")
    site_symmetry: bool = True  # False: the full-cell variant of the efficiency comparison (paper table 4)


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000
    cosine_s: float = 0.008  # Nichol & Dhariwal's offset, for k and for the discrete processes
    sigma_begin: float = 0.005  # wrapped-normal noise on fractional coordinates, geometric in t (DiffCSP)
    sigma_end: float = 0.5
    corrector_step: float = 1e-5  # Langevin corrector step for coordinates (DiffCSP's step_lr); 0 disables it
    weight_lattice: float = 1.0
    weight_coords: float = 1.0
    weight_types: float = 1.0
    weight_symmetry: float = 10.0


@dataclass(frozen=True)
class Preset:
    name: str
    network: NetworkConfig = field(default_factory=NetworkConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preset:
        return cls(data["name"], NetworkConfig(**data["network"]), DiffusionConfig(**data["diffusion"]),
                   OptimConfig(**data["optim"]))


PRESETS = {
    "paper": Preset("paper", optim=OptimConfig(max_epochs=1000, plateau_patience=30)),
    # About two hours of MP-20 training on a 2-core CPU: ~0.6 M parameters, patience scaled to the epoch budget.
    "cpu": Preset(
        "cpu",
        NetworkConfig(hidden=128, layers=4, time_dim=10, sg_dim=64, axis_dim=8, edge_frequencies=16),
        DiffusionConfig(),
        OptimConfig(batch_size=128, max_epochs=400, plateau_patience=15),
    ),
    # The cpu network fine-tuned from a cpu checkpoint on more data (`bench train --init-from ...`): the cpu
    # preset's 1e-3 restart left an MP-20 fine-tune at a loss of 3.76-3.81 after 90 epochs, above the 3.56 its source
    # had reached at its 1e-4 floor, so a lower rate and floor.
    "cpu-finetune": Preset(
        "cpu-finetune",
        NetworkConfig(hidden=128, layers=4, time_dim=10, sg_dim=64, axis_dim=8, edge_frequencies=16),
        DiffusionConfig(),
        OptimConfig(lr=2e-4, batch_size=128, max_epochs=400, plateau_patience=15, min_lr=5e-5),
    ),
    # For tests only.
    "tiny": Preset(
        "tiny",
        NetworkConfig(hidden=16, layers=1, time_dim=4, sg_dim=8, axis_dim=2, edge_frequencies=2, node_frequencies=2),
        DiffusionConfig(timesteps=20),
        OptimConfig(batch_size=8, max_epochs=1, plateau_patience=1),
    ),
}


def get_preset(name: str, batch_size: int | None = None) -> Preset:
    """A named preset, optionally with another batch size."""
    return select_preset(PRESETS, name, batch_size)
