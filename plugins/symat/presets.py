"""Model, training and sampling presets. ``paper`` follows appendix D.1; ``cpu`` is what trains on two cores here."""

from __future__ import annotations

_COMMON = {
    "num_rbf": 32,
    "vec_channels": 16,
    "num_levels": 50,  # T
    "sigma_max": 10.0,
    "sigma_min": 0.01,
    "lr": 1e-3,
    "grad_clip": 10.0,
    "step_size": 1e-4,  # epsilon of algorithm 1
    # lattice decoder regresses lengths / N^(1/3), decoded lengths are multiplied by the decoded N^(1/3): the
    # authors' code (divelab/AIRS OpenMat/SyMat configs, lattice_scale=True); issue 23
    "lattice_scale": True,
    # a fine-tune from a shipped checkpoint (bench train --init-from, e.g. adding the latent property predictor)
    # starts at this learning rate instead of lr
    "finetune_lr": 3e-4,
}

PRESETS: dict[str, dict] = {
    # Appendix D.1: 4 message-passing layers, hidden 128, decoder MLP hidden 256, lr 1e-3, batch 128, 1000 epochs,
    # Langevin q = 100 steps per level. The paper does not state the cutoff or latent sizes; 5 A is DIG's default.
    "paper": {
        **_COMMON,
        "hidden": 128,
        "layers": 4,
        "mlp_hidden": 256,
        "latent_a": 64,
        "latent_l": 64,
        "cutoff": 5.0,
        "batch_size": 128,
        "max_epochs": 1000,
        "steps_per_level": 100,
    },
    # Two shared CPU cores: narrower, shallower, shorter cutoff. steps_per_level (q) is sized so that 10,000
    # samples fit a session here: measured CPU seconds per sample at q = 10 were 0.21 (Perov-5) and 0.77
    # (MP-20, early checkpoint), i.e. ~2 h of CPU for 10,000 MP-20 samples; q = 5 halves that (README.md).
    "cpu": {
        **_COMMON,
        "hidden": 64,
        "layers": 3,
        "mlp_hidden": 128,
        "latent_a": 32,
        "latent_l": 16,
        "cutoff": 4.0,
        "batch_size": 64,
        "max_epochs": 1000,
        "steps_per_level": 5,
    },
}

MODEL_KEYS = (
    "hidden",
    "layers",
    "mlp_hidden",
    "latent_a",
    "latent_l",
    "cutoff",
    "num_rbf",
    "vec_channels",
    "num_levels",
    "sigma_max",
    "sigma_min",
    "lattice_scale",
    # the latent property predictor (optional; absent from checkpoints without one)
    "property",
    "property_mean",
    "property_std",
)


def resolve(preset: str, overrides: dict | None = None) -> dict:
    """The preset's settings with any explicit, non-None overrides applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown symat preset {preset!r}; choose from {sorted(PRESETS)}")
    cfg = dict(PRESETS[preset])
    for key, value in (overrides or {}).items():
        if value is not None and key in cfg:
            cfg[key] = value
    cfg["preset"] = preset
    return cfg
