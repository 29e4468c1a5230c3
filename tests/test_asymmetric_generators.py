"""What SymmBFN and SymmCD share as asymmetric-unit generators, tested once for both: the loss falls on a tiny
set; training writes a checkpoint, manifest and loss curves; training resumes; sampling is seeded and keeps the
drawn space group; a saved checkpoint loads to the same samples; the shipped checkpoints are small and described."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Structure

from harness.generator import TrainResult
from harness.schemas import validate

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
LOSS_COLUMNS = {
    "symmbfn": ["total", "coords", "lattice", "types", "ops"],
    "symmcd": ["total", "lattice", "coords", "types", "symmetry"],
}
FAST_SAMPLING = {"symmbfn": {"n_steps": 5}, "symmcd": {}}


def generator_class(name: str):
    module = importlib.import_module(f"plugins.{name}.generator")
    return next(getattr(module, attr) for attr in dir(module)
                if attr.endswith("Generator") and getattr(getattr(module, attr), "name", None) == name)


def data_stats(gen):
    """The group/size statistics the generator draws from (SymmCD wraps them with its marginals)."""
    stats = gen.model.stats
    return getattr(stats, "data", stats)


@pytest.mark.parametrize("name", sorted(LOSS_COLUMNS))
def test_loss_components_are_finite_and_decrease_on_a_tiny_set(name, toy_split):
    from plugins._asymmetric import encode, pack

    training = importlib.import_module(f"plugins.{name}.training")
    get_preset = importlib.import_module(f"plugins.{name}.config").get_preset
    packed = pack([encode(s) for s in toy_split.structures])
    stats = training.KIND.make_stats(packed)
    model = training.build_model(get_preset("tiny"), stats, seed=0)
    batch = training.KIND.make_batch(packed, stats, "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        losses = model.loss(batch, torch.Generator().manual_seed(0))  # same t and noise: a fixed objective
        assert set(losses) == set(LOSS_COLUMNS[name])
        assert all(torch.isfinite(v) for v in losses.values())
        first = first if first is not None else losses["total"].item()
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
    assert losses["total"].item() < first


@pytest.fixture(scope="module", params=sorted(LOSS_COLUMNS))
def trained(request, toy_split, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XTALBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        gen = generator_class(name)("toy", **FAST_SAMPLING[name])
        gen.progress = False  # as the runner sets it under --no-progress
        result = gen.train(toy_split, {"preset": "tiny", "max_epochs": 2, "device": "cpu"}, out, seed=0)
        frozen = out / "two-epochs.pt"  # model.pt moves on when a later test resumes training in ``out``
        shutil.copyfile(result.checkpoint, frozen)
        yield name, gen, TrainResult(frozen, result.manifest), out


def test_training_writes_checkpoint_manifest_and_curves(trained):
    name, _, result, out = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["epochs"] == 2 and manifest["crystals_used"] == 12
    for key in ("data_sha256", "splits", "preset", "wall_seconds", "git_commit", "final_losses", "seed"):
        assert key in manifest
    validate(manifest, "manifest", str(out / "manifest.json"))
    assert manifest["schema_version"] == 1
    _, embedded = importlib.import_module(f"plugins.{name}.training").load_model_file(result.checkpoint)
    assert embedded == manifest
    rows = (out / "loss.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[3:] == LOSS_COLUMNS[name] and len(rows) == 3
    assert (out / "loss.png").stat().st_size > 0 and result.checkpoint.exists()


def test_resume_continues_the_epoch_count(trained, toy_split):
    name, _, _, out = trained
    train = importlib.import_module(f"plugins.{name}.training").train
    result = train(toy_split, {"preset": "tiny", "max_epochs": 3, "resume": True, "device": "cpu"}, out, seed=0)
    assert result.manifest["epochs"] == 3
    assert len((out / "loss.csv").read_text().strip().splitlines()) == 4


def test_sampling_is_deterministic_and_leaves_global_rng_alone(trained):
    _, gen, _, _ = trained
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = gen.sample(6, seed=11, batch_size=4)
    second = gen.sample(6, seed=11, batch_size=4)
    other = gen.sample(6, seed=12, batch_size=4)
    assert torch.equal(torch_state, torch.random.get_rng_state()) and np.array_equal(np_state, np.random.get_state()[1])

    def key(s):
        return None if s is None else (s.composition.formula, tuple(np.round(s.lattice.abc, 6)))

    assert len(first) == 6 and [key(s) for s in first] == [key(s) for s in second]
    assert [key(s) for s in first] != [key(s) for s in other]
    built = [s for s in first if s is not None]
    assert built and all(isinstance(s, Structure) for s in built)


def invariant_under_group(structure: Structure, space_group: int) -> bool:
    """Every operation of the group's general position maps the crystal onto itself (same species)."""
    from pyxtal.symmetry import Group

    frac = np.mod(structure.frac_coords, 1.0)
    species = [site.specie.symbol for site in structure]
    for op in Group(space_group)[0].ops:
        moved = np.mod(op.operate_multi(frac), 1.0)
        for point, sp in zip(moved, species, strict=True):
            delta = frac - point
            dist = np.linalg.norm(delta - np.rint(delta), axis=1)
            if not any(d < 1e-3 and s == sp for d, s in zip(dist, species, strict=True)):
                return False
    return True


def test_samples_have_the_symmetry_of_their_drawn_group(trained):
    _, gen, _, _ = trained
    groups, _ = data_stats(gen).sample_groups_and_sizes(6, np.random.default_rng(11))
    samples = gen.sample(6, seed=11, batch_size=4)
    checked = [(s, g) for s, g in zip(samples, groups, strict=True) if s is not None]
    assert checked and all(invariant_under_group(s, int(g)) for s, g in checked)


def test_load_roundtrip_gives_the_same_samples(trained):
    name, gen, result, _ = trained
    fresh = generator_class(name)("toy", **FAST_SAMPLING[name])
    fresh.progress = False
    fresh.load(result.checkpoint, "cpu")
    a, b = gen.sample(3, seed=5, batch_size=3), fresh.sample(3, seed=5, batch_size=3)
    assert [None if s is None else s.composition for s in a] == [None if s is None else s.composition for s in b]
    assert fresh.training_splits() == ["train"]


@pytest.mark.parametrize("name", sorted(LOSS_COLUMNS))
def test_missing_checkpoint_says_how_to_train(name):
    with pytest.raises(FileNotFoundError, match=f"bench train --plugin {name}"):
        generator_class(name)("no-such-dataset").load(None, "cpu")


@pytest.mark.parametrize("name", sorted(LOSS_COLUMNS))
@pytest.mark.parametrize("dataset", ["perov5", "mp20"])
def test_shipped_checkpoint_is_small_and_described(name, dataset):
    folder = PLUGINS / name / "checkpoints"
    path = folder / f"{dataset}.pt"
    if not path.exists():
        pytest.skip(f"no shipped {name} {dataset} checkpoint yet")
    assert path.stat().st_size <= 20 * 2**20
    manifest = json.loads((folder / f"{dataset}.manifest.json").read_text())
    assert manifest["dataset"] == dataset and manifest["epochs"] >= 1 and manifest["data_sha256"]
    _, embedded = importlib.import_module(f"plugins.{name}.training").load_model_file(path)
    assert embedded["dataset"] == dataset


def test_symmbfn_emits_only_the_elements_of_its_training_data(trained, toy_split):
    import dataclasses

    name, gen, _, _ = trained
    if name != "symmbfn":
        pytest.skip("the element mask is SymmBFN's")
    seen = {i + 1 for i, c in enumerate(gen.model.stats.type_counts) if c}
    assert seen == {site.specie.Z for s in toy_split.structures for site in s}

    def elements(samples):
        return {site.specie.Z for s in samples if s is not None for site in s}

    assert elements(gen.sample(16, seed=3, batch_size=8)) <= seen
    masked_stats = gen.model.stats
    try:  # without the counts (a checkpoint saved before them) a two-epoch model strays, so the check can fail
        gen.model.stats = dataclasses.replace(masked_stats, type_counts=None)
        assert not elements(gen.sample(16, seed=3, batch_size=8)) <= seen
        assert gen.sampling_settings()["element_mask"].startswith("none")
    finally:
        gen.model.stats = masked_stats
    assert "elements of the training data" in gen.sampling_settings()["element_mask"]


def test_resume_refuses_a_checkpoint_trained_on_other_data(trained, toy_split, tmp_path, monkeypatch):
    from harness.datasets import Split

    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "cache"))
    name, _, _, out = trained
    shutil.copytree(out, tmp_path / "run")
    train = importlib.import_module(f"plugins.{name}.training").train
    other = Split("toy", "train", toy_split.structures[:7], toy_split.material_ids[:7], "other-sha")
    with pytest.raises(ValueError, match="differ from this split"):
        train(other, {"preset": "tiny", "max_epochs": 3, "resume": True, "device": "cpu"}, tmp_path / "run", seed=0)


def test_resume_fills_in_statistics_the_checkpoint_predates(trained, toy_split, tmp_path, monkeypatch):
    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "cache"))
    name, _, _, out = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    state = torch.load(run / "last.pt", weights_only=False)
    stats = state["stats"].get("data", state["stats"])
    assert stats.pop("type_counts") is not None
    torch.save(state, run / "last.pt")
    training = importlib.import_module(f"plugins.{name}.training")
    result = training.train(toy_split, {"preset": "tiny", "max_epochs": 3, "resume": True, "device": "cpu"}, run,
                            seed=0)
    model, _ = training.load_model_file(result.checkpoint)
    assert getattr(model.stats, "data", model.stats).type_counts is not None


def test_a_signal_stops_training_at_the_next_batch_with_a_checkpoint(toy_split, tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) ends training as its time box does: a checkpoint of the last whole epoch, resumable."""
    import os
    import signal

    from plugins.symmbfn import training

    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "cache"))
    before = signal.getsignal(signal.SIGTERM)

    def log(message: str) -> None:
        if message.startswith("epoch 1 "):
            os.kill(os.getpid(), signal.SIGTERM)

    result = training.train(toy_split, {"preset": "tiny", "max_epochs": 50, "device": "cpu"}, tmp_path / "run",
                            seed=0, log=log)
    assert result.manifest["epochs"] == 1  # epoch 2 was cut short: dropped from the history, its updates kept
    assert (tmp_path / "run" / "last.pt").exists() and signal.getsignal(signal.SIGTERM) == before
    again = training.train(toy_split, {"preset": "tiny", "max_epochs": 2, "resume": True, "device": "cpu"},
                           tmp_path / "run", seed=0, log=lambda message: None)
    assert again.manifest["epochs"] == 2
