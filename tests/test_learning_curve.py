"""benchmarks/learning_curve.py: what a point says about its checkpoint (epochs, splits, a fine-tune's source)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import learning_curve  # noqa: E402


def _save(path, **payload):
    torch.save(payload, path)
    return path


def test_a_plain_checkpoint_counts_its_own_epochs(tmp_path):
    path = _save(tmp_path / "a.pt", epoch=279, wall_seconds=10.0, history=[{"total": 3.9}],
                 manifest={"splits": "val+train_partial"})
    info = learning_curve.checkpoint_info(path)
    assert info["epoch"] == 279 and info["epochs_in_all"] == 279
    assert info["losses"] == {"total": 3.9} and info["splits"] == "val+train_partial"
    assert "init_from" not in info


def test_a_fine_tune_is_placed_after_its_source(tmp_path):
    source = {"sha256": "ab" * 32, "epochs": 400, "splits": "val+train_partial", "path": "mp20.pt"}
    path = _save(tmp_path / "b.pt", epoch=133, manifest={"splits": "val+train_recovered", "init_from": source})
    info = learning_curve.checkpoint_info(path)
    assert info["epoch"] == 133 and info["epochs_in_all"] == 533
    assert info["init_from"] == {"sha256": "ab" * 32, "epochs": 400, "splits": "val+train_partial"}


def test_a_checkpoint_without_a_manifest_reads_its_own_fields(tmp_path):
    # SyMat's checkpoints keep epoch and losses at the top level
    path = _save(tmp_path / "c.pt", epoch=17, wall_seconds=2400.0, last_losses={"total": 3.52})
    info = learning_curve.checkpoint_info(path)
    assert info["epoch"] == 17 and info["epochs_in_all"] == 17
    assert info["losses"] == {"total": 3.52} and info["splits"] is None
