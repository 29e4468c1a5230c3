"""The conditional task end to end (issue 24): labels read from a split's column, SymmBFN's property input (shape,
determinism for a seed, a fine-tune that starts from exactly the unconditional network), conditional training through
``bench train``, ``bench run --task conditional`` writing a valid record, and its refusals."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.cli.main import main
from harness.conditional import achieved_summary, target_name
from harness.datasets import DatasetError, Split, read_split_column
from harness.records import load_record
from harness.registry import get_registry
from harness.tasks import PropertyTarget
from tests.conftest import toy_structures, write_labelled_toy_mp20

SYMMBFN_MP20 = ["--plugin", "symmbfn", "--dataset", "mp20", "--threads", "1", "--device", "cpu"]


# --- labels --------------------------------------------------------------------------------------------------------


def _split(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> Split:
    files, sizes = [], []
    for name, frame in frames.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        files.append(str(path))
        sizes.append(len(frame))
    n = sum(sizes)
    return Split("mp20", "+".join(frames), [None] * n, [str(i) for i in range(n)], "0" * 64, files, sizes)


def test_a_column_is_read_in_split_order_with_nan_where_a_part_has_none(tmp_path):
    split = _split(tmp_path, {"val": pd.DataFrame({"cif": ["a", "b"], "formation_energy_per_atom": [-1.5, ""]}),
                              "train_recovered": pd.DataFrame({"cif": ["c", "d", "e"]})})
    values = read_split_column(split, "formation_energy_per_atom")
    assert values.shape == (5,) and values[0] == -1.5 and np.isnan(values[1:]).all()


def test_a_bad_label_names_its_file_and_row_and_a_missing_column_is_refused(tmp_path):
    split = _split(tmp_path, {"val": pd.DataFrame({"cif": ["a", "b"], "formation_energy_per_atom": ["-1", "oops"]})})
    with pytest.raises(DatasetError, match=r"val\.csv: row 3 \(CSV line\): formation_energy_per_atom 'oops'"):
        read_split_column(split, "formation_energy_per_atom")
    with pytest.raises(DatasetError, match="no file has a 'band_gap' column"):
        read_split_column(split, "band_gap")


# --- the network's property input ---------------------------------------------------------------------------------


@functools.cache
def _toy_stats():
    from plugins._asymmetric.batching import DataStats
    from plugins._asymmetric.dataset import pack
    from plugins._asymmetric.representation import encode

    return DataStats.from_packed(pack([encode(s) for s in toy_structures()]))


def _tiny(preset_name: str, seed: int = 0):
    from plugins.symmbfn.config import get_preset
    from plugins.symmbfn.training import build_model

    return build_model(get_preset(preset_name), _toy_stats(), seed)


def _forward(model, prop):
    torch.manual_seed(3)
    b, n = 2, 3
    inputs = dict(space_group=torch.tensor([225, 186]), t=torch.tensor([0.3, 0.7]), mu_lattice=torch.randn(b, 6),
                  lattice_mask=torch.ones(b, 6), mu_coords=torch.rand(b, n, 3),
                  theta_types=torch.softmax(torch.randn(b, n, 100), -1),
                  theta_ops=torch.softmax(torch.randn(b, n, 15, 13), -1), node_mask=torch.ones(b, n, dtype=torch.bool))
    with torch.no_grad():
        return model.net(**inputs, prop=prop)


def test_the_property_enters_as_a_third_embedding_and_changes_the_output():
    model = _tiny("tiny-conditional")
    assert model.net.cond_in.in_features == 3 * model.net.config.embedding
    low, high = _forward(model, torch.tensor([-2.8, -2.8])), _forward(model, torch.tensor([-0.5, -0.5]))
    assert low["type_logits"].shape == (2, 3, 100) and low["eps_lattice"].shape == (2, 6)
    assert not torch.equal(low["type_logits"], high["type_logits"])
    assert torch.equal(low["type_logits"], _forward(model, torch.tensor([-2.8, -2.8]))["type_logits"])


def test_a_fine_tune_starts_from_exactly_the_unconditional_network():
    from plugins._asymmetric.training import transfer_weights

    source, target = _tiny("tiny", seed=1), _tiny("tiny-conditional", seed=2)
    notes = transfer_weights(source, target)
    assert list(notes) == ["net.cond_in.weight"] and "new columns zero" in notes["net.cond_in.weight"]
    unconditional = _forward(source, None)
    for prop in (-4.0, -0.5, 0.0):
        conditioned = _forward(target, torch.tensor([prop, prop]))
        for key, value in unconditional.items():
            assert torch.equal(value, conditioned[key]), (key, prop)
    with pytest.raises(ValueError, match="shape"):
        transfer_weights(_tiny("cpu"), _tiny("tiny-conditional"))


def test_achieved_values_against_a_target():
    summary = achieved_summary([-2.9, -2.7, -2.0, float("nan"), None], -2.8)
    assert summary["n"] == 3 and summary["median"] == pytest.approx(-2.7)
    assert summary["mae_to_target"] == pytest.approx((0.1 + 0.1 + 0.8) / 3)
    assert summary["within_0.25"] == pytest.approx(2 / 3) and summary["within_0.5"] == pytest.approx(2 / 3)
    assert achieved_summary([], -0.5)["n"] == 0 and achieved_summary([], -0.5)["median"] is None
    assert target_name(PropertyTarget("formation_energy_per_atom", -2.8)) == "formation_energy_per_atom=-2.8"


# --- training and running -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_mp20(tmp_path_factory):
    """The toy crystals as MP-20's val split labelled with made-up formation energies, and a test split; a private
    cache."""
    root = tmp_path_factory.mktemp("conditional")
    write_labelled_toy_mp20(root / "data", -0.2, -0.3, test_labelled=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XTALBENCH_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def conditional_checkpoint(toy_mp20):
    root = toy_mp20
    code = main(["train", *SYMMBFN_MP20, "--preset", "tiny-conditional", "--condition", "formation_energy_per_atom",
                 "--train-split", "val", "--epochs", "1", "--data-dir", str(root / "data"), "--out", str(root / "run"),
                 "--ship", "--ship-as", "mp20-conditional", "--ship-checkpoints", str(root / "checkpoints"),
                 "--ship-curves", str(root / "curves")])
    assert code == 0
    return root / "checkpoints" / "mp20-conditional.pt"


def test_conditional_training_records_its_labels_and_ships_under_its_own_name(conditional_checkpoint, toy_mp20):
    manifest = json.loads(conditional_checkpoint.with_name("mp20-conditional.manifest.json").read_text())
    assert manifest["condition"]["property"] == "formation_energy_per_atom"
    assert manifest["condition"]["labelled_crystals"] == 12 and manifest["condition"]["label_max"] == pytest.approx(-0.2)
    assert (toy_mp20 / "curves" / "loss.csv").exists()


def test_conditional_samples_are_deterministic_for_a_seed_and_follow_the_target(conditional_checkpoint):
    generator = get_registry().generator("symmbfn", "mp20")
    generator.load(conditional_checkpoint, "cpu")
    assert generator.conditioned_on() == ("formation_energy_per_atom",)
    target = PropertyTarget("formation_energy_per_atom", -2.8)
    first = generator.sample_conditional(6, target, seed=5, batch_size=6)
    again = generator.sample_conditional(6, target, seed=5, batch_size=6)
    other = generator.sample_conditional(6, PropertyTarget("formation_energy_per_atom", 0.5), seed=5, batch_size=6)
    as_dicts = [s.as_dict() if s is not None else None for s in first]
    assert as_dicts == [s.as_dict() if s is not None else None for s in again]
    assert as_dicts != [s.as_dict() if s is not None else None for s in other]
    assert generator.sampling_settings()["conditioned_on"] == ["formation_energy_per_atom"]


def test_an_unconditional_checkpoint_is_refused_for_conditional_sampling():
    generator = get_registry().generator("symmbfn", "perov5")
    generator.load(None, "cpu")
    with pytest.raises(ValueError, match="takes no property"):
        generator.sample_conditional(2, PropertyTarget("formation_energy_per_atom", -1.0), 0, 2)


@pytest.mark.parametrize(("extra", "message"), [
    (["--preset", "tiny"], "takes no property, so it cannot be conditioned"),
])
def test_conditioning_needs_a_preset_that_takes_a_property(toy_mp20, extra, message):
    with pytest.raises(ValueError, match=message):
        main(["train", *SYMMBFN_MP20, *extra, "--condition", "formation_energy_per_atom", "--train-split", "val",
              "--epochs", "1", "--data-dir", str(toy_mp20 / "data"), "--out", str(toy_mp20 / "refused")])


@pytest.mark.parametrize(("extra", "message"), [
    (["--n-relax", "5"], "relaxes every sample of every target"),
    (["--relaxer", "sevennet"], "fixes its evaluation"),
    (["--no-stability"], "fixes its evaluation"),
])
def test_bench_run_refuses_what_the_conditional_task_fixes(capsys, extra, message):
    assert main(["run", "--plugin", "symmbfn", "--dataset", "mp20", "--task", "conditional", *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_conditional_run_writes_a_valid_record_per_target(conditional_checkpoint, toy_mp20, capsys, monkeypatch):
    from harness.stability.relax import RelaxSettings

    # the recording is under test here, not the relaxation: 20 FIRE steps instead of the protocol's 500
    monkeypatch.setattr(RelaxSettings, "for_relaxer", classmethod(lambda cls, name="chgnet", **kw: cls(max_steps=20)))
    out = toy_mp20 / "result"
    argv = ["run", "--plugin", "symmbfn", "--dataset", "mp20", "--task", "conditional",
            "--target", "formation_energy_per_atom=-2.8", "--n-samples", "1", "--checkpoint", str(conditional_checkpoint),
            "--data-dir", str(toy_mp20 / "data"), "--out", str(out), "--workers", "1", "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    assert "target -2.80 eV/atom: stable" in capsys.readouterr().out
    record = load_record(out / "record.json")  # validated against the schema
    block = record["task"]["conditional"]
    assert record["task"]["name"] == "conditional" and record["tier"] == "custom" and record["n_samples"] == 1
    assert block["labels"] == "dataset_dft" and [t["value"] for t in block["targets"]] == [-2.8]
    metrics = block["targets"][0]["metrics"]
    assert metrics["n_relaxed"] == 1 and metrics["stable_rate"] == metrics["n_stable"]
    assert record["metrics"]["valid"] is None  # the unconditional metrics were not computed
    assert record["details"]["stability"]["relax"]["max_steps"] == 20
    table = pd.read_parquet(out / "per_sample.parquet")
    assert table["target"].tolist() == [-2.8] and "formation_energy_per_atom" in table.columns
    assert main(argv) == 0  # complete: the same command returns the same record
    assert load_record(out / "record.json")["created"] == record["created"]


def test_the_board_shows_conditional_records_in_their_own_section_only(conditional_checkpoint, toy_mp20):
    import shutil

    from harness.leaderboard import build_boards, render_board
    from harness.leaderboard_html import RunFiles, board_page

    record = toy_mp20 / "result" / "record.json"
    if not record.exists():
        pytest.skip("needs the conditional run above")
    results = toy_mp20 / "board" / "results"
    (results / "mp20" / "symmbfn" / "conditional-run").mkdir(parents=True)
    shutil.copy(record, results / "mp20" / "symmbfn" / "conditional-run" / "record.json")
    board = next(b for b in build_boards(results, toy_mp20 / "board" / "leaderboards") if b.dataset == "mp20")
    assert not any(row.entry is not None for row in board.main.rows)  # never a row of the unconditional board
    table = next(t for t in board.tasks if t.heading.startswith("Conditioned generation"))
    ours = [row for row in table.rows if row[0] == "symmbfn"]
    assert [row[2] for row in ours] == ["-2.8"] and ours[0][1] == "custom (1)"
    assert [row[2] for row in table.rows if row[0] == "SymmBFN *(published)*"] == ["-0.5", "-2.8", "-4.0", "none"]
    markdown = render_board(board)
    assert "## Conditioned generation (not ranked)" in markdown and "[record](" in markdown
    page = board_page(board, [board], RunFiles(results, toy_mp20 / "board" / "site"))
    assert "<h2>Conditioned generation (not ranked)</h2>" in page and "<td>-2.8</td>" in page


def test_bench_report_draws_the_achieved_values_against_the_targets(conditional_checkpoint, toy_mp20, capsys):
    out = toy_mp20 / "result"
    if not (out / "record.json").exists():
        pytest.skip("needs the conditional run above")
    assert main(["report", str(out), "--data-dir", str(toy_mp20 / "data")]) == 0
    report = (out / "report.md").read_text()
    assert "| custom (1)" in report and "![achieved formation energy against each target]" in report
    assert "Training labels: 12 values, median -1.85" in report  # the toy val split's made-up labels
    assert (out / "conditional_formation_energy.png").read_bytes()[:4] == b"\x89PNG"
