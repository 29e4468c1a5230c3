"""The report's comparison of two relaxers on the same samples: a table, the disagreements, a scatter plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.figures import EHULL_RANGE, SAMPLE_COLOUR, TEST_COLOUR, new_figure, save_figure
from harness.io import atomic_write
from harness.leaderboard import MISSING, format_value
from harness.protocol import STABLE_EHULL
from harness.records import PER_SAMPLE_NAME, RECORD_NAME, load_record, resolve_record_path


def relaxer_name(record: dict[str, Any]) -> str | None:
    """Who relaxed a record's stability subset (None: no stability); records from before relaxers were plugins
    were relaxed by CHGNet, the protocol's relaxer."""
    from harness.relaxer import PROTOCOL_RELAXER

    stability = (record.get("details") or {}).get("stability")
    if not stability or not (record.get("metrics") or {}).get("n_relaxed"):
        return None
    return (stability.get("relaxer") or {}).get("name", PROTOCOL_RELAXER)


def relaxer_siblings(record_path: str | Path) -> list[Path]:
    """Other records of the same samples (same ``samples_sha256``, in the same plugin folder) whose stability
    subset another relaxer relaxed: what ``bench report`` compares a record with."""
    record_path = resolve_record_path(record_path)
    record = load_record(record_path)
    own = relaxer_name(record)
    if own is None:
        return []
    found = []
    for path in sorted(record_path.parent.parent.glob(f"*/{RECORD_NAME}")):
        if path.resolve() == record_path.resolve():
            continue
        other = load_record(path)
        name = relaxer_name(other)
        if name not in (None, own) and other["data"]["samples_sha256"] == record["data"]["samples_sha256"]:
            found.append(path)
    return found


def plot_relaxer_agreement(rows: pd.DataFrame, names: tuple[str, str], path: Path, title: str) -> Path:
    """E_hull of the same samples under two relaxers, stable/not-stable quadrants marked."""
    a, b = names
    plt, fig, ax = new_figure()
    both = rows[rows["scored_by_both"].astype(bool)]
    low, high = EHULL_RANGE
    x = both[f"e_hull_{a}"].astype(float).clip(low, high)
    y = both[f"e_hull_{b}"].astype(float).clip(low, high)
    agree = both["agree"].astype(bool)
    ax.scatter(x[agree], y[agree], s=14, color=TEST_COLOUR, label=f"agree on stability ({int(agree.sum())})")
    ax.scatter(x[~agree], y[~agree], s=22, color=SAMPLE_COLOUR, marker="x",
               label=f"disagree ({int((~agree).sum())})")
    ax.plot([low, high], [low, high], color="grey", lw=0.8)
    ax.axvline(STABLE_EHULL, color="black", lw=0.8)
    ax.axhline(STABLE_EHULL, color="black", lw=0.8)
    ax.set_xlabel(f"E_hull by {a} (eV/atom), clipped to [{low:g}, {high:g}]")
    ax.set_ylabel(f"E_hull by {b} (eV/atom)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def relaxer_comparison(record: dict[str, Any], table: pd.DataFrame, other_path: Path, run_dir: Path
                        ) -> tuple[list[str], Path]:
    """The report section comparing this record's relaxer with another record's on the same samples."""
    import os

    from tabulate import tabulate

    from harness.stability.agreement import relaxer_agreement

    other = load_record(other_path)
    other_table = pd.read_parquet(other_path.parent / (other["files"].get("per_sample") or PER_SAMPLE_NAME))
    a, b = relaxer_name(record), relaxer_name(other)
    summary, rows = relaxer_agreement(table, other_table, (a, b))
    csv = run_dir / f"relaxers_{a}_vs_{b}.csv"
    atomic_write(csv, lambda tmp: rows.to_csv(tmp))
    n = summary["n_scored_by_both"]
    plot = plot_relaxer_agreement(rows, (a, b), run_dir / f"relaxers_{a}_vs_{b}.png",
                                  f"stability by {a} and {b} on the same {n} samples: agreement "
                                  f"{format_value(summary['agreement_rate'], 'rate')}")

    def number(value, kind="rate"):
        return format_value(value, kind)

    link = Path(os.path.relpath(other_path.resolve(), run_dir.resolve())).as_posix()
    lines = [
        f"## Relaxers compared: {a} and {b}", "",
        f"The same samples' stability subset relaxed by {b} in [{other['run_id']}]({link}); both scored on "
        "the same hull. Every sample side by side: "
        f"[{csv.name}]({csv.name}).", "",
        tabulate([
            ["relaxed subset", summary["n_relaxed"][a], summary["n_relaxed"][b]],
            ["failed or unscored (of the common samples)", summary["n_failed"][a], summary["n_failed"][b]],
            ["stable rate (scored by both)", number(summary["stable_rate_scored_by_both"][a]),
             number(summary["stable_rate_scored_by_both"][b])],
            ["seconds relaxing (last invocation)", _relax_seconds(record), _relax_seconds(other)],
        ], headers=["", a, b], tablefmt="github", disable_numparse=True), "",
        f"- samples in both subsets: {summary['n_common']:,}; scored by both: {n:,}",
        f"- **agreement on stable / not stable: {number(summary['agreement_rate'])}**; stable by both "
        f"{summary['stable_by_both']}, by {a} only {summary[f'stable_by_{a}_only']}, by {b} only "
        f"{summary[f'stable_by_{b}_only']}, by neither {summary['stable_by_neither']}",
        f"- E_hull: mean |{b} − {a}| {number(summary['e_hull_mae'])} eV/atom, median {b} − {a} "
        f"{number(summary['e_hull_median_difference'])}, Spearman ρ {number(summary['e_hull_spearman'])}; "
        f"relaxed energy mean |Δ| {number(summary['energy_mae'])} eV/atom", "",
    ]
    disagree = rows[rows["agree"].map(lambda value: value is False or value is np.False_)]
    if len(disagree):
        shown = [[index, r.get("formula", MISSING), f"{r[f'e_hull_{a}']:.4f}", f"{r[f'e_hull_{b}']:.4f}",
                  a if r[f"stable_{a}"] else b]
                 for index, r in disagree.iterrows()]
        lines += ["Samples the two disagree on:", "",
                  tabulate(shown, headers=["sample", "formula", f"E_hull {a}", f"E_hull {b}", "stable by"],
                           tablefmt="github", disable_numparse=True), ""]
    lines += [f"![{a} vs {b}]({plot.name})", ""]
    return lines, plot


def _relax_seconds(record: dict[str, Any]) -> str:
    seconds = (((record.get("details") or {}).get("stability") or {}).get("timings") or {}).get("relax_s")
    return MISSING if seconds is None else f"{seconds:,.1f}"
