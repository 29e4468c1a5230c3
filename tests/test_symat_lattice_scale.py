"""SyMat's lattice parameterisation (issue 23): lengths per N^(1/3), so a decoded cell's volume follows its atoms."""

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from plugins.symat import presets
from plugins.symat.data import from_per_atom_lengths, from_structure, lattice_stats, per_atom_lengths
from plugins.symat.graph import lattice_params
from plugins.symat.model import SyMat
from plugins.symat.sampling import decode, decode_lattice
from plugins.symat.training import load_model, model_payload

TINY = {
    "hidden": 8,
    "layers": 1,
    "mlp_hidden": 8,
    "latent_a": 3,
    "latent_l": 2,
    "cutoff": 3.0,
    "num_rbf": 4,
    "vec_channels": 2,
    "num_levels": 3,
    "sigma_max": 1.0,
    "sigma_min": 0.1,
}
MEAN, STD = [4.0, 5.0, 6.0, 80.0, 95.0, 100.0], [0.5, 0.5, 0.5, 5.0, 5.0, 5.0]


def tiny_model(lattice_scale: bool | None) -> SyMat:
    cfg = dict(TINY) if lattice_scale is None else {**TINY, "lattice_scale": lattice_scale}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SyMat(cfg, max_atoms=8, lattice_mean=MEAN, lattice_std=STD).eval()
    last = model.vae.mlp_l[2]
    torch.nn.init.zeros_(last.weight)  # the lattice decoder answers the training mean whatever z_L is
    torch.nn.init.zeros_(last.bias)
    return model


def test_per_atom_lengths_round_trip_and_leave_angles_alone():
    params = torch.tensor(
        [[4.0, 8.0, 12.0, 90.0, 100.0, 120.0], [3.0, 3.0, 3.0, 60.0, 60.0, 60.0]], dtype=torch.float64
    )
    num_atoms = torch.tensor([8, 1])
    items = per_atom_lengths(params, num_atoms)
    torch.testing.assert_close(
        items[0], torch.tensor([2.0, 4.0, 6.0, 90.0, 100.0, 120.0], dtype=torch.float64)
    )
    torch.testing.assert_close(items[1], params[1])
    torch.testing.assert_close(from_per_atom_lengths(items, num_atoms), params)


def test_a_scaled_decoder_gives_every_atom_count_the_same_volume_per_atom():
    model = tiny_model(lattice_scale=True)
    num_atoms = torch.tensor([1, 2, 5, 8, 20])
    lattices, ok = decode_lattice(model, torch.zeros(5, TINY["latent_l"]), num_atoms)
    assert ok.all()
    per_atom = torch.linalg.det(lattices).abs() / num_atoms
    reference, _ = decode_lattice(model, torch.zeros(1, TINY["latent_l"]), torch.tensor([1]))
    torch.testing.assert_close(per_atom, torch.linalg.det(reference).abs().expand(5), rtol=1e-6, atol=0)
    lengths = lattice_params(lattices)[:, :3]
    expected = torch.tensor(MEAN[:3], dtype=torch.float64) * num_atoms[:, None] ** (1 / 3)
    torch.testing.assert_close(lengths, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("flag", [None, False])
def test_checkpoints_without_the_flag_decode_plain_lengths(flag):
    """Checkpoints written before plugin 0.2 (no ``lattice_scale`` key) keep their cells whatever the atom count."""
    model = tiny_model(flag)
    assert model.cfg["lattice_scale"] is False
    lattices, _ = decode_lattice(model, torch.zeros(3, TINY["latent_l"]), torch.tensor([1, 4, 20]))
    torch.testing.assert_close(lattice_params(lattices), torch.tensor([MEAN] * 3, dtype=torch.float64))
    params = torch.tensor([MEAN], dtype=torch.float64)
    torch.testing.assert_close(model.lattice_items(params, torch.tensor([8])), params)


def test_the_flag_survives_a_checkpoint_and_old_payloads_load_unscaled(tmp_path):
    for flag in (True, False):
        payload = model_payload(tiny_model(flag))
        assert payload["cfg"]["lattice_scale"] is flag
        torch.save(payload, tmp_path / "m.pt")
        assert load_model(tmp_path / "m.pt")[0].cfg["lattice_scale"] is flag
    del payload["cfg"]["lattice_scale"]  # as written by plugin 0.1
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt")[0].cfg["lattice_scale"] is False


def test_decoded_samples_scale_their_cell_with_their_atoms():
    model = tiny_model(lattice_scale=True)
    z = torch.randn(64, TINY["latent_a"] + TINY["latent_l"], generator=torch.Generator().manual_seed(1))
    decoded = decode(model, z)
    n = torch.tensor([len(a) for a in decoded.numbers], dtype=torch.float64)
    assert len(set(n.tolist())) > 1
    per_atom = torch.linalg.det(decoded.lattices.double()).abs() / n
    torch.testing.assert_close(per_atom, per_atom[:1].expand(len(n)), rtol=1e-5, atol=1e-5)


def test_training_targets_and_statistics_are_per_atom():
    structures = [
        Structure(Lattice.cubic(4.0), ["Sr", "Ti", "O", "O", "O"], np.random.default_rng(0).random((5, 3))),
        Structure(Lattice.cubic(2.0), ["Fe"], [[0, 0, 0]]),
    ]
    crystals = [from_structure(s) for s in structures]
    mean, _ = lattice_stats(crystals, lattice_scale=True)
    np.testing.assert_allclose(mean[:3], [(4.0 / 5 ** (1 / 3) + 2.0) / 2] * 3, rtol=1e-6)
    assert lattice_stats(crystals)[0][:3] == pytest.approx([3.0] * 3)
    assert presets.PRESETS["cpu"]["lattice_scale"] and presets.PRESETS["paper"]["lattice_scale"]
    assert "lattice_scale" in presets.MODEL_KEYS


def test_shipped_checkpoints_decode_as_their_manifests_say():
    """A checkpoint trained before plugin 0.2 has no lattice_scale in its manifest and samples as 0.1 did."""
    import json

    from plugins.symat.generator import CHECKPOINT_DIR

    for name in ("mp20", "perov5"):
        path = CHECKPOINT_DIR / f"{name}.pt"
        if path.exists():
            manifest = json.loads(path.with_name(f"{name}.manifest.json").read_text())
            assert load_model(path)[0].cfg["lattice_scale"] is manifest["config"].get("lattice_scale", False)


def test_training_writes_a_scaled_checkpoint(tmp_path):
    from harness.datasets import Split
    from plugins.symat.generator import SyMatGenerator

    structures = [
        Structure(
            Lattice.cubic(3.9 + 0.1 * i),
            ["Sr", "Ti", "O", "O", "O"],
            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        )
        for i in range(3)
    ] + [Structure(Lattice.cubic(2.9), ["Fe"], [[0, 0, 0]])]
    split = Split("perov5", "train", structures, [f"m{i}" for i in range(4)], "0" * 64)
    config = {
        "preset": "cpu",
        "max_epochs": 1,
        "device": "cpu",
        "batch_size": 4,
        "resume": False,
        "preset_overrides": TINY,
    }
    result = SyMatGenerator("perov5").train(split, config, tmp_path, seed=0)
    model, payload = load_model(result.checkpoint)
    assert payload["cfg"]["lattice_scale"] is True and result.manifest["config"]["lattice_scale"] is True
    expected = np.mean([3.9 / 5 ** (1 / 3), 4.0 / 5 ** (1 / 3), 4.1 / 5 ** (1 / 3), 2.9])
    np.testing.assert_allclose(model.lattice_mean[:3].numpy(), [expected] * 3, rtol=1e-5)
