"""SyMat plugin: registration, training (time-boxed, resumable), checkpoints and seeded sampling."""

import json

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from harness.datasets import Split
from harness.registry import build_registry
from harness.schemas import validate
from plugins.symat.generator import CHECKPOINT_DIR, SyMatGenerator

TINY = {
    "hidden": 16,
    "layers": 1,
    "mlp_hidden": 16,
    "latent_a": 4,
    "latent_l": 3,
    "cutoff": 3.5,
    "num_rbf": 8,
    "vec_channels": 4,
    "num_levels": 4,
    "steps_per_level": 2,
}


def tiny_split() -> Split:
    rng = np.random.default_rng(0)
    structures = [
        Structure(
            Lattice.cubic(3.9 + 0.1 * i),
            ["Sr", "Ti", "O", "O", "O"],
            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        )
        for i in range(4)
    ] + [
        Structure(Lattice.from_parameters(4, 5, 6, 80, 95, 100), ["Li", "O", "O"], rng.random((3, 3)))
        for _ in range(4)
    ]
    return Split("perov5", "train", structures, [f"m{i}" for i in range(8)], "0" * 64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("symat")
    gen = SyMatGenerator("perov5")
    config = {
        "preset": "cpu",
        "max_epochs": 2,
        "max_minutes": None,
        "device": "cpu",
        "batch_size": 4,
        "resume": False,
        "preset_overrides": TINY,
    }
    result = gen.train(tiny_split(), config, out, seed=0)
    sampler = SyMatGenerator("perov5", steps_per_level=1)  # keeps sampling tests fast
    sampler.load(result.checkpoint, "cpu")
    return sampler, result, out, config


def test_registered_through_entry_point():
    spec = build_registry().generator_spec("symat")
    assert spec.target == "plugins.symat.generator:SyMatGenerator"
    assert set(spec.datasets) == {"mp20", "perov5", "carbon24"}
    assert spec.load_class() is SyMatGenerator


def test_train_writes_checkpoint_manifest_and_curves(trained):
    _, result, out, _ = trained
    assert result.checkpoint.exists()
    manifest = json.loads((out / "manifest.json").read_text())
    for key in (
        "data_sha256",
        "splits",
        "preset",
        "epochs",
        "wall_seconds",
        "git_commit",
        "final_losses",
        "seed",
        "torch_version",
    ):
        assert key in manifest
    assert manifest["epochs"] == 2 and manifest["complete"]
    validate(manifest, "manifest", str(out / "manifest.json"))
    assert manifest["schema_version"] == 1
    assert set(manifest["final_losses"]) >= {"total", "k", "elements", "counts", "lattice", "kl", "score"}
    rows = (out / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 3
    assert (out / "losses.png").stat().st_size > 0


def test_resume_continues_from_last(trained):
    _, _, out, config = trained
    result = SyMatGenerator("perov5").train(
        tiny_split(), {**config, "max_epochs": 3, "resume": True}, out, seed=0
    )
    assert result.manifest["epochs"] == 3
    assert len((out / "losses.csv").read_text().splitlines()) == 4


def test_shipped_copy_resumes_in_a_fresh_directory(trained, tmp_path):
    from harness.training import continue_from, ship

    _, _, out, config = trained
    shipment = SyMatGenerator("perov5").shipment()
    assert shipment.checkpoint_dir == CHECKPOINT_DIR and shipment.checkpoint == "last.pt"
    ship(shipment, out, "perov5", tmp_path / "ship", tmp_path / "curves")
    shipped = tmp_path / "ship" / "perov5.pt"
    assert (tmp_path / "curves" / "losses.png").exists()
    done = json.loads((tmp_path / "ship" / "perov5.manifest.json").read_text())["epochs"]
    config = {**config, "resume": True}
    # nothing left to train: the weights are the shipped ones (a fresh start with seed 5 would differ)
    for run, epochs in (("a", done), ("b", done + 1)):
        assert continue_from(shipment, tmp_path / run, shipped, "perov5", tmp_path / "ship", tmp_path / "curves")
        result = SyMatGenerator("perov5").train(tiny_split(), {**config, "max_epochs": epochs}, tmp_path / run, seed=5)
        if run == "a":
            ours = torch.load(result.checkpoint, weights_only=False)["state_dict"]
            theirs = torch.load(shipped, weights_only=False)["state_dict"]
            assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert result.manifest["epochs"] == done + 1
    rows = (tmp_path / "b" / "losses.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, done + 2))  # earlier epochs' curve kept


def test_a_signal_stops_training_before_the_next_batch_with_a_checkpoint(tmp_path):
    """SIGTERM (or Ctrl-C) ends training as its time box does; here it comes from the first periodic save."""
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    saves = []

    def on_checkpoint():
        saves.append(json.loads((tmp_path / "manifest.json").read_text())["epochs"])
        os.kill(os.getpid(), signal.SIGTERM)

    config = {"preset": "cpu", "max_epochs": 50, "device": "cpu", "batch_size": 4, "preset_overrides": TINY,
              "checkpoint_minutes": 0, "on_checkpoint": on_checkpoint}
    result = SyMatGenerator("perov5").train(tiny_split(), config, tmp_path, seed=0)
    assert saves == [1] and result.manifest["epochs"] == 1 and not result.manifest["complete"]
    assert signal.getsignal(signal.SIGTERM) == before


def test_time_box_stops_cleanly(tmp_path):
    config = {
        "preset": "cpu",
        "max_epochs": 50,
        "max_minutes": 0.0,
        "device": "cpu",
        "batch_size": 4,
        "resume": False,
        "preset_overrides": TINY,
    }
    result = SyMatGenerator("perov5").train(tiny_split(), config, tmp_path, seed=0)
    assert result.manifest["epochs"] == 0 and not result.manifest["complete"]
    assert result.checkpoint.exists() and (tmp_path / "last.pt").exists()


def test_sampling_is_seeded_and_leaves_global_rng_alone(trained):
    gen, _, _, _ = trained
    before = torch.get_rng_state()
    first, again, other = (
        gen.sample(5, seed=3, batch_size=2),
        gen.sample(5, seed=3, batch_size=2),
        gen.sample(5, 4, 2),
    )
    assert torch.equal(before, torch.get_rng_state())
    assert len(first) == 5
    built = [(a, b) for a, b in zip(first, again, strict=True) if a is not None]
    assert built and all(b is not None and np.array_equal(a.frac_coords, b.frac_coords) for a, b in built)
    assert all(a.species == b.species for a, b in built)
    assert any(
        a is not None
        and b is not None
        and (len(a) != len(b) or not np.allclose(a.frac_coords, b.frac_coords))
        for a, b in zip(first, other, strict=True)
    )


def test_samples_do_not_depend_on_batch_size(trained):
    gen, _, _, _ = trained
    small, large = gen.sample(10, seed=1, batch_size=3), gen.sample(10, seed=1, batch_size=16)
    assert [s is None for s in small] == [s is None for s in large]
    assert any(s is not None for s in small)
    for a, b in zip(small, large, strict=True):
        if a is not None:
            assert a.species == b.species
            np.testing.assert_allclose(a.frac_coords, b.frac_coords, atol=1e-4)


def test_unbuildable_samples_come_back_as_none(trained):
    gen, _, _, _ = trained
    model = gen.model
    saved = model.lattice_mean.clone(), model.lattice_std.clone()
    try:
        # angles 30/30/150 admit no lattice (|cos gamma| > 1): every sample is unbuildable
        model.lattice_mean[3:] = torch.tensor([30.0, 30.0, 150.0])
        model.lattice_std.fill_(1e-6)
        assert gen.sample(3, seed=0, batch_size=2) == [None, None, None]
    finally:
        model.lattice_mean.copy_(saved[0])
        model.lattice_std.copy_(saved[1])


def test_sampling_settings_recorded(trained):
    gen, _, _, _ = trained
    settings = gen.sampling_settings()
    assert settings["steps_per_level"] == 1 and settings["num_levels"] == 4 and settings["step_size"] == 1e-4
    # without an override, the checkpoint preset's shipped default (TINY's steps_per_level is ignored)
    assert SyMatGenerator("perov5").sampling_settings()["steps_per_level"] == 5


@pytest.mark.parametrize("dataset", ["perov5", "mp20"])
def test_shipped_checkpoint_loads(dataset):
    path = CHECKPOINT_DIR / f"{dataset}.pt"
    assert path.exists(), f"no shipped checkpoint {path}"
    assert path.stat().st_size <= 20 * 2**20
    gen = SyMatGenerator(dataset)
    gen.load(None, "cpu")
    assert gen.training_splits() == (["train"] if dataset == "perov5" else ["val", "train_recovered"])
    if dataset == "mp20":  # retrained with lengths per atom (issue 23); the Perov-5 one predates it
        assert gen.model.cfg["lattice_scale"] is True
    assert gen.checkpoint_path == path
