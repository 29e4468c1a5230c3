"""Per-run reports: plots and markdown beside a tiny record; test-split properties and their cache."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from conftest import diamond, rocksalt

from harness import report
from harness.cli import report as report_cli

try:
    from test_leaderboard_records import make_record, per_sample_table, write_run
except ImportError:  # tests/ imported as a package
    from tests.test_leaderboard_records import make_record, per_sample_table, write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def reference_table() -> pd.DataFrame:
    return pd.DataFrame({"density": [2.1, 3.5, 5.0, 4.2], "num_elems": [2, 3, 1, 2], "spacegroup": [225, 62, 1, 14]})


def bench_report(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    report_cli.register(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def test_report_writes_plots_and_markdown_linking_them_deterministically(tmp_path):
    record = make_record(metrics={"valid": 0.8, "sg_jsd": 0.25, "stable_rate": 0.3, "n_relaxed": 10})
    path = write_run(tmp_path / "results", record, per_sample_table(relaxed=10))
    result = report.write_report(path, reference_table())
    names = sorted(p.name for p in result.plots)
    assert names == ["density.png", "ehull.png", "num_elems.png", "spacegroup.png"]
    for plot in result.plots:
        assert plot.parent == path.parent and plot.read_bytes().startswith(PNG_MAGIC)
    text = result.markdown.read_text()
    assert result.markdown == path.parent / "report.md"
    for name in names:
        assert f"]({name})" in text
    assert "| valid ↑ " in text and "0.8000" in text and "[record.json](record.json)" in text
    assert "× atoms closer than … Å" in text
    assert result.notes == ()
    contents = {p: p.read_bytes() for p in (result.markdown, *result.plots)}
    again = report.write_report(path, reference_table())
    assert {p: p.read_bytes() for p in (again.markdown, *again.plots)} == contents


def test_report_without_stability_skips_ehull_with_a_note(tmp_path):
    path = write_run(tmp_path / "results", make_record(), per_sample_table(relaxed=10))
    report.write_report(path, reference_table())
    assert (path.parent / "ehull.png").exists()
    path = write_run(tmp_path / "results", make_record(), per_sample_table(relaxed=0))  # same run, rerun
    result = report.write_report(path.parent, None)  # the run folder is accepted too
    assert not (path.parent / "ehull.png").exists()
    assert len(result.plots) == 3
    text = result.markdown.read_text()
    assert "E_hull plot is skipped" in text and "samples alone" in text and "ehull.png" not in text


def test_structure_properties_of_textbook_crystals():
    salt = report.structure_properties(rocksalt())
    assert salt["spacegroup"] == 225 and salt["num_elems"] == 2
    assert salt["density"] == pytest.approx(2.165, abs=0.01)  # NaCl, a = 5.64 Å
    assert report.structure_properties(diamond())["spacegroup"] == 227
    # A supercell with a rattled atom keeps its composition but loses symmetry.
    rattled = rocksalt() * (1, 1, 2)
    rattled.translate_sites([0], [0.03, 0.01, 0.0])
    props = report.structure_properties(rattled)
    assert props["num_elems"] == 2 and props["spacegroup"] < 225


def test_reference_properties_are_cached_by_split_hash(tiny_dataset, monkeypatch):
    first = report.reference_properties("tiny")
    assert len(first) == 8 and set(first.columns) == {"density", "num_elems", "spacegroup"}
    assert first["spacegroup"].tolist()[:2] == [225, 221]  # rocksalt, cubic perovskite
    monkeypatch.setattr(report, "properties_table", lambda structures: pytest.fail("cache not used"))
    pd.testing.assert_frame_equal(report.reference_properties("tiny"), first)


def test_cli_writes_report_and_refuses_a_bad_record(tmp_path, capsys):
    path = write_run(tmp_path / "results", make_record(), per_sample_table())
    assert bench_report(str(path), "--no-reference") == 0
    assert "wrote" in capsys.readouterr().out and (path.parent / "report.md").exists()
    bad = tmp_path / "bad" / "record.json"
    bad.parent.mkdir()
    bad.write_text('{"schema_version": 1}')
    assert bench_report(str(bad), "--no-reference") == 2
    assert "bad/record.json" in capsys.readouterr().err


def test_hull_support_counts_the_dataset_compounds_each_relaxed_sample_competed_with(tmp_path):
    from harness.stability.hull import ReferenceHull

    entries = [("element:Na", "Na", -1.3), ("element:Cl", "Cl", -1.8), ("element:K", "K", -1.0),
               ("element:F", "F", -1.9), ("train:1", "Na1 Cl1", -3.0), ("train:2", "Na1 Cl3", -2.0)]
    hull = ReferenceHull("tiny-hull", "test", entries, {el: {} for el in ("Na", "Cl", "K", "F")})
    table = per_sample_table(relaxed=10)
    table.loc[5:, "formula"] = "KF"  # rows 5-9 relaxed in K-F, which holds no compound; 10+ not relaxed
    table.loc[:9, "e_hull"] = [-0.1, 0.2, 0.0, 0.3, 0.4, -0.2, -0.05, 0.5, 0.6, 0.7]
    table["stable"] = table["e_hull"] <= 0
    table.loc[3, "e_hull"] = -0.3  # below the hull but not converged: the record's flag says not stable
    support = report.hull_support(table, hull)
    assert list(support.index) == list(range(10))
    assert support.tolist() == [2] * 5 + [0] * 5
    path = write_run(tmp_path / "results", make_record(metrics={"n_relaxed": 10}), table)
    text = report.write_report(path, None, hull).markdown.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| none"))
    assert [c.strip() for c in row.strip("|").split("|")][1:] == ["5", "2", "0.400"]
    row = next(line for line in text.splitlines() if line.startswith("| 1–4"))
    assert [c.strip() for c in row.strip("|").split("|")][1:] == ["5", "2", "0.400"]
    assert "2 of the 4 stable samples sit in chemical systems without a dataset compound" in text
    assert "Hull support" not in report.write_report(path, None).markdown.read_text()


def test_dataset_hull_is_refused_for_another_hull_and_never_built(tiny_dataset, monkeypatch):
    from harness.stability import reference

    record = make_record()
    assert report.dataset_hull(record)[0] is None  # no stability data
    record["details"] = {"stability": {"hull": {"name": "mp-2023", "sha256": "ab" * 32}}}
    hull, why = report.dataset_hull(record)
    assert hull is None and "not a dataset's own hull" in why
    monkeypatch.setattr(reference, "build_dataset_hull", lambda *a, **k: pytest.fail("must not build a hull"))
    record["details"]["stability"]["hull"] = {"name": "tiny", "dataset": "tiny", "sha256": "ab" * 32}
    hull, why = report.dataset_hull(record)
    assert hull is None and "not available" in why


def test_invalid_reasons_count_a_sample_that_was_never_built_once():
    table = pd.DataFrame({
        "valid": [False, False, False, True],
        "invalid_reason": ["generator returned no structure", None, None, None],
        "validity_reason": ["not constructed: generator returned no structure",
                            "atoms 0.31 Å apart (< 0.5); not charge balanced (SMACT)", "not charge balanced (SMACT)", None],
    })
    assert report._invalid_reasons(table) == [
        "- 2 × not charge balanced (SMACT)",
        "- 1 × atoms … Å apart (< …)",
        "- 1 × generator returned no structure",
    ]


def test_the_cost_line_names_the_cpus_and_the_invocations_killed_outright():
    timings = {"generation_s": 12.0, "evaluation_s": 3600.0, "invocations": 3, "wall_s": 4000.0, "cpu_s": 7900.0,
               "max_rss_gb": 2.1, "peak_tree_rss_gb": 4.4, "cpus": ["AMD EPYC", "Intel Xeon"], "killed_invocations": 1}
    text = report.cost_text(timings)
    assert "over 3 invocation(s); wall 4,000.0 s, CPU 7,900.0 s" in text
    assert "; on AMD EPYC and Intel Xeon; 1 invocation(s) killed outright, counted to their last heartbeat" in text
    older = report.cost_text({k: v for k, v in timings.items() if k not in ("cpus", "killed_invocations")})
    assert "killed" not in older and " on " not in older
