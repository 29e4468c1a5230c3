"""The harness plumbing SymmBFN and SymmCD share: train, load the shipped checkpoint, report the training splits."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from harness.generator import Generator, Shipment, TrainResult, resolve_device


class AsymmetricGenerator(Generator):
    """A generator whose ``training_module`` offers ``train(split, config, out_dir, seed)`` and
    ``load_model_file(path, device)``, and whose checkpoints ship in ``<plugin>/checkpoints/<dataset>.pt``."""

    training_module: str = ""  # e.g. "plugins.symmbfn.training"
    train_options = ("condition", "init_from")  # the shared loop's (plugins._asymmetric.training.train)
    label: str = ""  # the model's name in messages

    def __init__(self, dataset: str):
        super().__init__(dataset)
        self.model = None
        self.manifest: dict = {}
        self.device = "cpu"

    @property
    def checkpoint_dir(self) -> Path:
        return Path(importlib.import_module(self.training_module).__file__).resolve().parent / "checkpoints"

    def train(self, dataset, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
        training = importlib.import_module(self.training_module)
        result = training.train(dataset, config, Path(out_dir), seed)
        self.device = resolve_device(config.get("device"))
        self.model, self.manifest = training.load_model_file(result.checkpoint, self.device)
        self.checkpoint_path = result.checkpoint
        return result

    def default_checkpoint(self) -> Path | None:
        path = self.checkpoint_dir / f"{self.dataset}.pt"
        return path if path.exists() else None

    def default_task_checkpoint(self, task: str) -> Path | None:
        """``<dataset>-<task>.pt`` beside the unconditional ``<dataset>.pt`` (``bench train --ship-as``)."""
        if task == "unconditional":
            return self.default_checkpoint()
        path = self.checkpoint_dir / f"{self.dataset}-{task}.pt"
        return path if path.exists() else None

    def load(self, checkpoint: Path | None = None, device: str | None = None) -> None:
        path = Path(checkpoint) if checkpoint else self.default_checkpoint()
        if path is None:
            raise FileNotFoundError(f"no shipped {self.label} checkpoint for {self.dataset!r} in {self.checkpoint_dir}; "
                                    f"train one with `bench train --plugin {self.name} --dataset {self.dataset}`")
        self.device = resolve_device(device)
        self.model, self.manifest = importlib.import_module(self.training_module).load_model_file(path, self.device)
        self.checkpoint_path = path

    def shipment(self) -> Shipment:
        """``last.pt`` (weights, optimiser and RNG states: it samples and resumes) and the curves."""
        return Shipment(self.checkpoint_dir, curves=("loss.csv", "loss.png", "manifest.json"))

    def training_splits(self) -> list[str] | None:
        splits = self.manifest.get("splits")
        return splits.split("+") if splits else None
