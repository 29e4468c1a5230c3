"""What the two baselines share: the small JSON "checkpoint" that names the training split they learned from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.io import atomic_write_json

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def default_training_split(dataset: str, data_dir=None) -> str:
    """``train`` where it is present, else every non-test split that is (MP-20 here: ``val+train_partial``)."""
    from harness.datasets import get_card, split_path
    from harness.paths import data_dir as resolve

    card = get_card(dataset)
    root = resolve(data_dir)
    if split_path(card, "train", root) is not None:
        return "train"
    present = [s for s in card.files if s != "test" and split_path(card, s, root) is not None]
    return "+".join(present) if present else "train"


def write_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    return atomic_write_json(path, payload)


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a baseline checkpoint: {exc}") from exc
