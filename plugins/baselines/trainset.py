"""``trainset``: draws training structures with replacement — the ceiling for validity and coverage, zero novelty."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets import Split, load_split
from harness.generator import Generator, TrainResult
from plugins.baselines.common import default_training_split, read_checkpoint, write_checkpoint


class TrainsetGenerator(Generator):
    name = "trainset"
    version = "1.0"

    def __init__(self, dataset: str):
        super().__init__(dataset)
        self._split: Split | None = None
        self._split_name: str | None = None

    def train(self, dataset: Split, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
        started = time.perf_counter()
        manifest = {"plugin": self.name, "dataset": dataset.dataset, "split": dataset.name,
                    "data_sha256": dataset.sha256, "n_structures": len(dataset), "seed": seed}
        manifest["wall_time_s"] = round(time.perf_counter() - started, 3)
        path = write_checkpoint(Path(out_dir) / f"trainset_{dataset.dataset}.json", manifest)
        return TrainResult(path, manifest)

    def load(self, checkpoint: Path | None, device: str) -> None:
        if checkpoint is not None:
            payload = read_checkpoint(checkpoint)
            self._split_name = payload["split"]
            self.checkpoint_path = Path(checkpoint)
        else:
            self._split_name = default_training_split(self.dataset)
        self._split = load_split(self.dataset, self._split_name)

    def sample(self, n: int, seed: int, batch_size: int) -> list:
        if self._split is None:
            raise RuntimeError("call load() before sample()")
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(self._split), size=n)
        return [self._split.structures[i].copy() for i in picks]

    def training_splits(self) -> list[str] | None:
        return self._split_name.split("+") if self._split_name else None

    def sampling_settings(self) -> dict[str, Any]:
        return {"split": self._split_name, "with_replacement": True}
