"""The ``symat`` generator: SyMat (Luo, Liu & Ji, NeurIPS 2023) behind the harness's Generator interface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.generator import Generator, Shipment, TrainResult, resolve_device

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


class SyMatGenerator(Generator):
    """VAE for element sets and lattices + distance-score Langevin dynamics for coordinates.

    ``steps_per_level`` (q) and ``step_size`` (epsilon) of algorithm 1 default to the checkpoint preset's values
    (``cpu``: q = 10, sized for 10,000 samples in a session here; ``paper``: q = 100); pass them to override.
    """

    name = "symat"
    version = "0.2"
    train_options = ("condition", "init_from")

    def __init__(self, dataset: str, steps_per_level: int | None = None, step_size: float | None = None):
        super().__init__(dataset)
        self.model = None
        self.device = "cpu"
        self._manifest: dict[str, Any] = {}
        self._steps_per_level = steps_per_level
        self._step_size = step_size

    def train(self, dataset, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
        from plugins.symat.training import train

        config = {**config, "device": resolve_device(config.get("device"))}
        result = train(dataset, config, Path(out_dir), seed)
        self.load(result.checkpoint, config["device"])
        return result

    def default_checkpoint(self) -> Path | None:
        path = CHECKPOINT_DIR / f"{self.dataset}.pt"
        return path if path.exists() else None

    def default_task_checkpoint(self, task: str) -> Path | None:
        """``<dataset>-<task>.pt`` beside ``<dataset>.pt`` (the optimise task's has the latent property predictor)."""
        if task == "unconditional":
            return self.default_checkpoint()
        path = CHECKPOINT_DIR / f"{self.dataset}-{task}.pt"
        return path if path.exists() else None

    def shipment(self) -> Shipment:
        """The full ``last.pt`` (weights + optimizer: it samples and resumes) and the loss curves."""
        return Shipment(CHECKPOINT_DIR, curves=("losses.csv", "losses.png"))

    def load(self, checkpoint: Path | None, device: str) -> None:
        from plugins.symat.training import load_model

        path = Path(checkpoint) if checkpoint else self.default_checkpoint()
        if path is None:
            raise FileNotFoundError(f"no shipped symat checkpoint for {self.dataset!r} in {CHECKPOINT_DIR}")
        self.device = resolve_device(device)
        self.model, _ = load_model(path, self.device)
        self.checkpoint_path = path
        manifest = path.with_name(path.stem + ".manifest.json")
        if not manifest.exists():
            manifest = path.with_name("manifest.json")
        self._manifest = json.loads(manifest.read_text()) if manifest.exists() else {}

    def _settings(self):
        from plugins.symat.presets import PRESETS
        from plugins.symat.sampling import LangevinSettings

        preset = PRESETS[self._manifest.get("preset", "cpu")]
        return LangevinSettings(
            steps_per_level=int(self._steps_per_level or preset["steps_per_level"]),
            step_size=float(self._step_size or preset["step_size"]),
        )

    def sample(self, n: int, seed: int, batch_size: int) -> list:
        from plugins.symat.sampling import sample

        if self.model is None:
            self.load(None, resolve_device(None))
        return sample(self.model, n, seed, max(1, batch_size), self._settings())

    def optimise(self, starts, request, seed: int) -> list[list]:
        """Task ``optimise``: the starts' latents stepped along the latent property predictor, decoded at
        ``request.decode_steps`` (``plugins.symat.optimise``); the predictor's values at those steps are kept in
        ``self.predicted_at_decodes`` for the record (diagnosis only, never the score)."""
        from plugins.symat.optimise import optimise

        if self.model is None:
            self.load(None, resolve_device(None))
        decodes, self.predicted_at_decodes = optimise(self.model, starts, request, seed, self._settings(),
                                                      progress=getattr(self, "progress", False))
        return decodes

    def sampling_settings(self) -> dict[str, Any]:
        settings = self._settings().as_dict()
        if self.model is not None:
            cfg = self.model.cfg
            settings |= {
                **({"property_predictor": cfg["property"]} if cfg.get("property") else {}),
                "num_levels": cfg["num_levels"],
                "sigma_max": cfg["sigma_max"],
                "sigma_min": cfg["sigma_min"],
                "cutoff": cfg["cutoff"],
                "device": self.device,
            }
        return settings

    def training_splits(self) -> list[str] | None:
        splits = self._manifest.get("splits")
        return splits.split("+") if splits else None
