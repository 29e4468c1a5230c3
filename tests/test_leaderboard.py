"""Leaderboards rendered from tiny records: row selection, markings, determinism and ``--check``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import leaderboard
from harness.cli import leaderboard as leaderboard_cli
from harness.protocol import METRIC_KEYS, METRIC_SPECS

try:
    from test_leaderboard_records import external_record, make_record, write_run
except ImportError:  # tests/ imported as a package
    from tests.test_leaderboard_records import external_record, make_record, write_run

PROTOCOL_MD = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def bench_leaderboard(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    leaderboard_cli.register(parser.add_subparsers())
    args = parser.parse_args(["leaderboard", *argv])
    return args.func(args)


def split_cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def tables(markdown: str, tasks: bool = False) -> list[list[list[str]]]:
    """Every table in ``markdown`` as rows of cells (header first, separator dropped); without ``tasks``, only those
    before the task sections (conditioned generation, tested in test_conditional.py)."""
    found, current = [], None
    for line in (markdown if tasks else markdown.split("\n## Conditioned generation")[0]).splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                found.append(current)
            if not line.startswith("|--"):
                current.append(split_cells(line))
        else:
            current = None
    return found


def header(markdown: str) -> list[str]:
    return [title for table in tables(markdown) for title in table[0]]


def cell(markdown: str, label: str, column: str) -> str:
    """The cell in ``column`` of the row whose model cell is ``label``, in whichever table has that column."""
    for table in tables(markdown):
        if column in table[0]:
            for cells in table[1:]:
                if cells[0] == label:
                    return cells[table[0].index(column)]
    raise AssertionError(f"no cell {label!r} / {column!r} in:\n{markdown}")


@pytest.fixture
def results(tmp_path):
    results = tmp_path / "results"
    write_run(results, make_record("trainset", metrics={"valid": 0.95, "wdist_density": 0.30, "n_relaxed": 100}))
    write_run(results, make_record("random", metrics={"valid": 0.60, "wdist_density": 0.10, "n_relaxed": 100}))
    return results


def test_renders_mp20_and_perov5_with_published_rows(results, tmp_path):
    rendered = leaderboard.render_all(results, tmp_path / "leaderboards")
    assert sorted(p.name for p in rendered) == ["mp20.md", "perov5.md"]
    mp20 = rendered[tmp_path / "leaderboards" / "mp20.md"]
    assert cell(mp20, "DiffCSP *(published)*", "comp ↑") == "0.8325"
    assert cell(mp20, "trainset", "tier (n)") == "quick (1,000)"
    assert cell(mp20, "trainset", "notes") == "–"
    perov5 = rendered[tmp_path / "leaderboards" / "perov5.md"]
    assert "No records yet" not in perov5 and "CDVAE *(published)*" in perov5
    assert set(header(mp20)) >= {spec.title for spec in METRIC_SPECS}


def test_best_value_is_bold_in_its_stated_direction(results, tmp_path):
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    assert cell(mp20, "trainset", "valid ↑") == "**0.9500**"  # higher is better
    assert cell(mp20, "random", "valid ↑") == "0.6000"
    assert cell(mp20, "random", "wdist ρ ↓") == "**0.1000**"  # lower is better
    assert cell(mp20, "trainset", "n relaxed") == "100"  # counts are never marked
    assert "**" not in cell(mp20, "SymmBFN *(published)*", "wdist ρ ↓")  # published rows are not ranked


def test_row_rule_prefers_full_tier_then_highest_valid_then_newest(tmp_path):
    results = tmp_path / "results"
    write_run(results, make_record("m", run_id="quick-high", tier="quick", metrics={"valid": 0.99}))
    write_run(results, make_record("m", run_id="full-low", tier="full", metrics={"valid": 0.50}))
    write_run(results, make_record("m", run_id="full-old", tier="full", metrics={"valid": 0.70},
                                   created="2026-01-01T00:00:00+00:00"))
    write_run(results, make_record("m", run_id="full-new", tier="full", metrics={"valid": 0.70},
                                   created="2026-02-01T00:00:00+00:00"))
    entries = leaderboard.load_entries(results)
    assert leaderboard.select_best(entries).record["run_id"] == "full-new"
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    assert "results/mp20/m/full-new/record.json" in cell(mp20, "m", "links")
    assert [len([r for r in t if r[0] == "m"]) for t in tables(mp20)] == [1, 1]  # one row per plugin


def test_other_training_split_is_said_in_the_row(tmp_path):
    results = tmp_path / "results"
    write_run(results, make_record("m", trained_on="val+train_partial", paper_split=False,
                                   novelty="val+train_partial", metrics={"novel_rate": 0.9}))
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    notes = cell(mp20, "m", "notes")
    assert "trained on val+train_partial, not the paper's training split" in notes
    assert "novelty judged against val+train_partial" in notes


def test_a_record_of_a_checkpoint_the_plugin_no_longer_ships_says_so(tmp_path, monkeypatch):
    shipped = tmp_path / "pkg" / "plugins" / "m" / "checkpoints" / "mp20.pt"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"retrained weights")
    from harness import records
    from harness.io import sha256_file

    monkeypatch.setattr(records, "PACKAGE_ROOT", tmp_path / "pkg")
    records.shipped_checkpoint_sha256.cache_clear()

    results = tmp_path / "results"
    for name, sha, path in (("old", "ab" * 32, "plugins/m/checkpoints/mp20.pt"),
                            ("now", sha256_file(shipped), "plugins/m/checkpoints/mp20.pt"),
                            ("own", "cd" * 32, "runs/train/m/last.pt")):  # weights no plugin ships
        record = make_record(name)
        record["checkpoint"] = {"path": path, "sha256": sha, "manifest": None}
        write_run(results, record)
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    records.shipped_checkpoint_sha256.cache_clear()
    assert cell(mp20, "old", "notes").startswith(
        f"an earlier checkpoint (ababababab): the plugin now ships {sha256_file(shipped)[:10]} as mp20.pt")
    assert "earlier checkpoint" not in cell(mp20, "now", "notes") + cell(mp20, "own", "notes")


def test_external_sets_are_marked_and_only_raw_10k_is_ranked(tmp_path):
    results = tmp_path / "results"
    write_run(results, make_record("m", tier="full", metrics={"valid": 0.80}))
    write_run(results, external_record("diffcsp", model="DiffCSP", metrics={"valid": 0.83}))
    write_run(results, external_record("llm-metastable", model="LLM", status="filtered", n_samples=3228,
                                       caveats=("metastable subset only",), metrics={"valid": 0.99}))
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    main, _, others = mp20.partition("## External sample sets (not ranked)")
    assert cell(main, "DiffCSP *(external, raw)*", "valid ↑") == "**0.8300**"
    assert cell(main, "m", "valid ↑") == "0.8000"
    assert "LLM" not in main
    assert cell(others, "LLM *(external, filtered)*", "valid ↑") == "0.9900"  # better, but never bold
    assert "metastable subset only" in cell(others, "LLM *(external, filtered)*", "notes")


def test_dataset_splits_scored_as_samples_are_a_reference_section_never_ranked(tmp_path):
    results = tmp_path / "results"
    write_run(results, make_record("m", tier="full", metrics={"valid": 0.80}))
    write_run(results, external_record("data-mp20-test", model="MP-20 test split", status="dataset", n_samples=9046,
                                       caveats=("the test split scored against itself",), metrics={"valid": 0.91}))
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    main, _, reference = mp20.partition("## The dataset's own structures scored as samples")
    assert "MP-20 test split" not in main and "External sample sets" not in mp20
    assert cell(reference, "MP-20 test split *(dataset)*", "valid ↑") == "0.9100"  # higher than m's, not bold
    notes = cell(reference, "MP-20 test split *(dataset)*", "notes")
    assert notes.startswith("the test split scored against itself") and "trained on" not in notes


def test_report_link_appears_when_report_exists(results, tmp_path):
    out = tmp_path / "lb"
    assert "[report]" not in cell(leaderboard.render_all(results, out)[out / "mp20.md"], "trainset", "links")
    (results / "mp20" / "trainset" / "run-a" / "report.md").write_text("# r\n")
    links = cell(leaderboard.render_all(results, out)[out / "mp20.md"], "trainset", "links")
    assert "[report](../results/mp20/trainset/run-a/report.md)" in links


def test_output_is_deterministic_and_carries_no_render_time(results, tmp_path):
    first = leaderboard.render_all(results, tmp_path / "lb")
    second = leaderboard.render_all(results, tmp_path / "lb")
    assert first == second
    assert not any(re.search(r"\d\d:\d\d:\d\d", text) for text in first.values())


def test_check_passes_in_step_and_fails_naming_a_hand_edited_file(results, tmp_path, capsys):
    out = tmp_path / "lb"
    assert bench_leaderboard("--results", str(results), "--out", str(out)) == 0
    assert bench_leaderboard("--results", str(results), "--out", str(out), "--check") == 0
    mp20 = out / "mp20.md"
    mp20.write_text(mp20.read_text().replace("**0.9500**", "**0.9700**"))
    capsys.readouterr()
    assert bench_leaderboard("--results", str(results), "--out", str(out), "--check") == 1
    err = capsys.readouterr().err
    assert f"{mp20}: differs" in err and "-| trainset" in err and "+| trainset" in err
    assert str(out / "perov5.md") not in err


def test_check_fails_on_missing_and_stale_files(results, tmp_path, capsys):
    out = tmp_path / "lb"
    leaderboard.write_all(results, out)
    (out / "perov5.md").unlink()
    (out / "carbon24.md").write_text(leaderboard.MARKER + "\n# old\n")
    (out / "README.md").write_text("hand-written, not generated\n")
    problems = {m.path.name: m.problem for m in leaderboard.check(results, out)}
    assert problems == {"perov5.md": "missing", "carbon24.md": "stale (no records or figures for it)"}
    assert bench_leaderboard("--results", str(results), "--out", str(out), "--check") == 1


def test_new_record_without_leaderboard_update_fails_check(results, tmp_path):
    out = tmp_path / "lb"
    leaderboard.write_all(results, out)
    write_run(results, make_record("newcomer", metrics={"valid": 0.5}))
    assert [m.path.name for m in leaderboard.check(results, out)] == ["mp20.md"]


def test_invalid_record_is_an_error_not_a_row(results, tmp_path, capsys):
    bad = results / "mp20" / "broken" / "x" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"schema_version": 99}))
    assert bench_leaderboard("--results", str(results), "--out", str(tmp_path / "lb")) == 2
    assert "schema_version 99" in capsys.readouterr().err


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=6))
def test_bold_marks_the_extreme_printed_value(values):
    rows = [leaderboard.Row(f"m{i}", "quick", {"valid": v, "wdist_density": v}, "", "", "", "")
            for i, v in enumerate(values)]
    best = leaderboard._best_values(rows)
    assert float(best["valid"]) == max(float(f"{v:.4f}") for v in values)
    assert float(best["wdist_density"]) == min(float(f"{v:.4f}") for v in values)


def test_published_figures_match_protocol_table():
    columns = {"struct": "struct_valid", "comp": "comp_valid", "COV-R": "cov_recall", "COV-P": "cov_precision",
               "wdist ρ": "wdist_density", "wdist N_el": "wdist_num_elems", "sg JSD": "sg_jsd_symmcd",
               "stable": "stable_rate", "SUN": "sun_rate", "s/sample": "seconds_per_sample"}
    lines = PROTOCOL_MD.read_text().split("## Published figures on MP-20")[1].splitlines()
    table = [[c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("|")]
    heads, body = table[0], table[2:]
    published = {(r["dataset"], r["method"]): r["metrics"] for r in leaderboard.published_rows()}
    assert len(body) == 4
    for cells in body:
        method = cells[0].split(" (")[0]
        metrics = published[("mp20", method)]
        for head, text in zip(heads[1:], cells[1:], strict=True):
            key = columns[head]
            assert metrics.get(key) == (None if text == "–" else float(text)), (method, head)


def test_published_rows_use_protocol_keys_and_name_a_source():
    rows = leaderboard.published_rows()
    assert {r["dataset"] for r in rows} == {"mp20", "perov5"}
    for row in rows:
        assert row["source"] and row["paper"] and row["metrics"], row["method"]
        assert set(row["metrics"]) <= set(METRIC_KEYS), row["method"]
        for key, value in row["metrics"].items():
            assert value >= 0 and (value <= 1 or key.startswith("seconds")), (row["method"], key)


SYMMCD_PAPER = PROTOCOL_MD.parents[2] / "shared" / "papers" / "symmcd-levy2024.txt"


@pytest.mark.skipif(not SYMMCD_PAPER.exists(), reason="needs the shared SymmCD paper text")
@pytest.mark.parametrize("method, row", [("DiffCSP++", "DiffCSP++"),
                                         ("DiffCSP (re-sampled by the SymmCD authors)", "DiffCSP")])
def test_rows_taken_from_the_symmcd_tables_match_the_paper(method, row):
    # Table 2: struct, comp, COV-R, COV-P (percent), three property wdists, sg JSD; Table 3: initial stable,
    # relaxed stable, relaxed S.U.N. (percent). Table 2 comes first in the text.
    lines = [line for line in SYMMCD_PAPER.read_text().splitlines() if line.startswith(f"{row} |")]
    table2 = [float(c) for c in lines[-2].split("|")[1:-1]]
    table3 = [float(c.strip().rstrip("%")) for c in lines[-1].split("|")[1:-1]]
    metrics = {(r["dataset"], r["method"]): r["metrics"] for r in leaderboard.published_rows()}[("mp20", method)]
    expected = {"struct_valid": table2[0] / 100, "comp_valid": table2[1] / 100, "cov_recall": table2[2] / 100,
                "cov_precision": table2[3] / 100, "wdist_density": table2[4], "wdist_num_elems": table2[6],
                "sg_jsd_symmcd": table2[7], "stable_rate": table3[1] / 100, "sun_rate": table3[2] / 100}
    assert metrics == pytest.approx(expected, abs=1e-9)


def test_names_the_hull_behind_measured_stability_and_warns_against_the_papers(tmp_path):
    results = tmp_path / "results"
    record = make_record("trainset", metrics={"valid": 0.9, "stable_rate": 0.5, "n_relaxed": 100})
    record["details"] = {"stability": {"hull": {"name": "mp20-chgnet-test-hull", "size": 19180, "sha256": "ab" * 32,
                                                "source": "dataset mp20: val+test"}}}
    write_run(results, record)
    write_run(results, make_record("random", dataset="perov5", metrics={"valid": 0.9, "n_relaxed": 100}))
    assert bench_leaderboard("--results", str(results), "--out", str(tmp_path / "lb")) == 0
    mp20 = (tmp_path / "lb" / "mp20.md").read_text()
    assert ("E_hull against `mp20-chgnet-test-hull` (19,180 entries, dataset mp20: val+test, sha256 abababababab…)"
            in mp20)
    assert "measured stable and S.U.N. rates run higher than the papers'" in mp20  # MP-20 has published stability
    assert "E_hull against" not in (tmp_path / "lb" / "perov5.md").read_text()  # no stability measured there
