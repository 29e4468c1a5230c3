"""``random``: pyxtal random symmetric crystals, space group and composition drawn from the training distribution.

"Training" records each training structure's space group (spglib, symprec 0.1) and its conventional-cell
element counts, which are by construction compatible with that group's Wyckoff multiplicities.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets import Split
from harness.generator import Generator, TrainResult
from plugins.baselines.common import CHECKPOINT_DIR, read_checkpoint, write_checkpoint

SYMPREC = 0.1
MAX_ATTEMPTS = 5


def symmetry_entry(structure) -> tuple[int, list[str], list[int]] | None:
    """(space group, species, conventional-cell counts) of a structure, or None when spglib fails."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=SYMPREC)
        conventional = analyzer.get_conventional_standard_structure()
        group = analyzer.get_space_group_number()
    except Exception:
        return None
    counts = conventional.composition.get_el_amt_dict()
    species = sorted(counts)
    return group, species, [int(round(counts[s])) for s in species]


class RandomSymmetricGenerator(Generator):
    name = "random"
    version = "1.0"

    def __init__(self, dataset: str):
        super().__init__(dataset)
        self._entries: list[tuple[int, list[str], list[int]]] = []
        self._weights = np.zeros(0)
        self._manifest: dict[str, Any] = {}

    def default_checkpoint(self) -> Path | None:
        path = CHECKPOINT_DIR / f"random_{self.dataset}.json"
        return path if path.exists() else None

    def train(self, dataset: Split, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
        from tqdm.auto import tqdm

        started = time.perf_counter()
        weights: Counter = Counter()
        failed = 0
        for structure in tqdm(dataset.structures, desc="space groups", unit="structure", mininterval=1):
            entry = symmetry_entry(structure)
            if entry is None:
                failed += 1
            else:
                group, species, counts = entry
                weights[(group, tuple(species), tuple(counts))] += 1
        manifest = {
            "plugin": self.name, "plugin_version": self.version, "dataset": dataset.dataset, "split": dataset.name,
            "data_sha256": dataset.sha256, "n_structures": len(dataset), "n_failed_symmetry": failed,
            "symprec": SYMPREC, "seed": seed, "wall_time_s": round(time.perf_counter() - started, 1),
        }
        # Distinct (group, species, counts) with how often each occurs: the empirical joint distribution.
        payload = {**manifest, "entries": [[g, list(s), list(c), w] for (g, s, c), w in sorted(weights.items())]}
        path = write_checkpoint(Path(out_dir) / f"random_{dataset.dataset}.json", payload)
        return TrainResult(path, manifest)

    def load(self, checkpoint: Path | None, device: str) -> None:
        checkpoint = checkpoint or self.default_checkpoint()
        if checkpoint is None:
            raise FileNotFoundError(
                f"no shipped 'random' model for {self.dataset}; run: bench train --plugin random --dataset {self.dataset}"
            )
        payload = read_checkpoint(checkpoint)
        self._entries = [(int(g), list(s), [int(x) for x in c]) for g, s, c, _ in payload["entries"]]
        weights = np.array([w for *_, w in payload["entries"]], dtype=float)
        self._weights = weights / weights.sum()
        self._manifest = {k: v for k, v in payload.items() if k != "entries"}
        self.checkpoint_path = Path(checkpoint)

    def sample(self, n: int, seed: int, batch_size: int) -> list:
        from pyxtal import pyxtal

        if not self._entries:
            raise RuntimeError("call load() before sample()")
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            structure = None
            for _attempt in range(MAX_ATTEMPTS):
                group, species, counts = self._entries[rng.choice(len(self._entries), p=self._weights)]
                crystal = pyxtal()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        crystal.from_random(3, group, species, counts, random_state=int(rng.integers(2**31)))
                    if crystal.valid:
                        structure = crystal.to_pymatgen()
                        break
                except Exception:
                    continue
            out.append(structure)
        return out

    def training_splits(self) -> list[str] | None:
        split = self._manifest.get("split")
        return split.split("+") if split else None

    def sampling_settings(self) -> dict[str, Any]:
        return {"max_attempts": MAX_ATTEMPTS, "symprec": SYMPREC, "source": "pyxtal.from_random"}
