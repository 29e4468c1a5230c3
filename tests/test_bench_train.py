"""``bench train`` as the one training entry point: ``--ship`` copies the resumable checkpoint, its manifest and
the loss curves (atomically, world-readable, after every periodic checkpoint and at the end), ``--resume-from``
continues a shipped checkpoint in a fresh folder with its curve, SIGTERM stops a shipping run cleanly, and
options that cannot apply are refused before any training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.io.cif import CifWriter

from harness.cli.main import main
from harness.registry import get_registry
from harness.schemas import validate
from tests.conftest import toy_structures

REPO = Path(__file__).resolve().parents[1]
SYMMBFN = ["--plugin", "symmbfn", "--dataset", "perov5", "--preset", "tiny", "--threads", "1", "--device", "cpu"]


def write_toy_perov5(data: Path) -> Path:
    """The dozen toy crystals as Perov-5's training split (a plain .csv is not checked against the card's hash)."""
    structures = toy_structures()
    (data / "perov5").mkdir(parents=True)
    pd.DataFrame({"material_id": [f"toy-{i}" for i in range(len(structures))],
                  "cif": [str(CifWriter(s)) for s in structures]}).to_csv(data / "perov5" / "train.csv")
    return data


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_train")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XTALBENCH_CACHE", str(root / "cache"))
        yield root, write_toy_perov5(root / "data")


@pytest.fixture(scope="module")
def shipped(toy_data):
    """Two epochs of tiny SymmBFN shipped into temporary folders under a private umask, checkpointing every batch."""
    root, data = toy_data
    ship = ["--ship", "--ship-checkpoints", str(root / "checkpoints"), "--ship-curves", str(root / "curves")]
    umask = os.umask(0o077)
    try:
        code = main(["train", *SYMMBFN, "--epochs", "2", "--checkpoint-minutes", "0", "--data-dir", str(data),
                     "--out", str(root / "run"), *ship])
    finally:
        os.umask(umask)
    assert code == 0
    return root, data, ship


def test_ship_copies_the_resumable_checkpoint_manifest_and_curves_world_readable(shipped):
    root, _, _ = shipped
    run, checkpoints, curves = root / "run", root / "checkpoints", root / "curves"
    assert (checkpoints / "perov5.pt").read_bytes() == (run / "last.pt").read_bytes()  # the resumable one
    assert (checkpoints / "perov5.manifest.json").read_text() == (run / "manifest.json").read_text()
    manifest = json.loads((checkpoints / "perov5.manifest.json").read_text())
    validate(manifest, "manifest", "shipped manifest")
    assert (manifest["generator"], manifest["dataset"], manifest["splits"], manifest["epochs"]) == \
        ("symmbfn", "perov5", "train", 2)
    assert sorted(p.name for p in curves.iterdir()) == ["loss.csv", "loss.png", "manifest.json"]
    assert (curves / "loss.csv").read_text() == (run / "loss.csv").read_text()
    for path in [*checkpoints.iterdir(), *curves.iterdir()]:  # no temporary file left behind either
        assert not path.name.startswith(".") and path.stat().st_mode & 0o777 == 0o644, path
    assert checkpoints.stat().st_mode & 0o777 == curves.stat().st_mode & 0o777 == 0o755

    generator = get_registry().generator("symmbfn", "perov5")
    generator.load(checkpoints / "perov5.pt", "cpu")
    assert generator.training_splits() == ["train"] and generator.manifest["epochs"] == 2


def test_ship_happens_at_every_periodic_checkpoint(shipped, capsys):
    root, data, ship = shipped
    code = main(["train", *SYMMBFN, "--epochs", "3", "--checkpoint-minutes", "0", "--data-dir", str(data),
                 "--out", str(root / "run"), *ship])
    out = capsys.readouterr().out
    assert code == 0 and "resumed from" in out
    # 12 toy crystals in batches of 8: two periodic checkpoints in the third epoch, then the final one
    assert out.count(f"shipped {root / 'checkpoints' / 'perov5.pt'} (+4 files)") == 3
    assert json.loads((root / "checkpoints" / "perov5.manifest.json").read_text())["epochs"] == 3


def test_resume_from_the_shipped_checkpoint_continues_in_a_fresh_folder(shipped, capsys):
    root, data, ship = shipped
    checkpoint = root / "checkpoints" / "perov5.pt"
    done = json.loads((root / "checkpoints" / "perov5.manifest.json").read_text())["epochs"]
    code = main(["train", *SYMMBFN, "--epochs", str(done + 1), "--data-dir", str(data), "--out", str(root / "again"),
                 "--resume-from", str(checkpoint), *ship])
    assert code == 0 and f"continuing {checkpoint}" in capsys.readouterr().out
    manifest = json.loads((root / "again" / "manifest.json").read_text())
    assert manifest["epochs"] == done + 1
    assert len((root / "again" / "loss.csv").read_text().strip().splitlines()) == done + 2  # header + every epoch
    assert json.loads((root / "checkpoints" / "perov5.manifest.json").read_text())["epochs"] == done + 1


def test_symat_ships_its_last_pt_and_losses(toy_data, tmp_path):
    _, data = toy_data
    code = main(["train", "--plugin", "symat", "--dataset", "perov5", "--epochs", "1", "--batch-size", "6",
                 "--threads", "1", "--device", "cpu", "--data-dir", str(data), "--out", str(tmp_path / "run"),
                 "--ship", "--ship-checkpoints", str(tmp_path / "checkpoints"), "--ship-curves", str(tmp_path / "curves")])
    assert code == 0
    assert (tmp_path / "checkpoints" / "perov5.pt").read_bytes() == (tmp_path / "run" / "last.pt").read_bytes()
    assert json.loads((tmp_path / "checkpoints" / "perov5.manifest.json").read_text())["complete"]
    assert sorted(p.name for p in (tmp_path / "curves").iterdir()) == ["losses.csv", "losses.png"]


def test_sigterm_stops_a_shipping_run_cleanly_and_ships_what_it_has(toy_data, tmp_path):
    _, data = toy_data
    command = [sys.executable, "-m", "harness.cli.main", "train", *SYMMBFN, "--epochs", "100000",
               "--checkpoint-minutes", "0", "--data-dir", str(data), "--out", str(tmp_path / "run"), "--ship",
               "--ship-checkpoints", str(tmp_path / "checkpoints"), "--ship-curves", str(tmp_path / "curves")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            lines.append(process.stdout.readline())
            if lines[-1].startswith("epoch 1 "):
                process.send_signal(signal.SIGTERM)
                break
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "SIGTERM: stopping after this batch" in output and output.strip().endswith("model.pt")
    shipped = json.loads((tmp_path / "checkpoints" / "perov5.manifest.json").read_text())
    assert shipped == json.loads((tmp_path / "run" / "manifest.json").read_text()) and 1 <= shipped["epochs"] < 100000
    assert (tmp_path / "checkpoints" / "perov5.pt").read_bytes() == (tmp_path / "run" / "last.pt").read_bytes()


@pytest.mark.parametrize(("argv", "message"), [
    (["--plugin", "random", "--ship"], "random ships no resumable checkpoint, so --ship"),
    (["--plugin", "symmbfn", "--ship-curves", "x"], "add --ship"),
    (["--plugin", "symmbfn", "--fresh", "--resume-from", "x.pt"], "cannot go with --fresh"),
    (["--plugin", "symat", "--resume-from", "no-such.pt"], "--resume-from no-such.pt: no such file"),
])
def test_options_that_cannot_apply_are_refused_before_training(argv, message, tmp_path, capsys):
    code = main(["train", *argv, "--dataset", "perov5", "--out", str(tmp_path / "run"), "--threads", "1"])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
