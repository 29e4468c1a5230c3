"""A per-run report: PNG plots of a record's samples against the test split, and a markdown summary."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.evaluation_types import NOT_CONSTRUCTED_PREFIX
from harness.figures import (
    EHULL_RANGE,
    OTHER_HULL_COLOUR,
    SAMPLE_COLOUR,
    TEST_COLOUR,
    new_figure,
    save_figure,
)
from harness.io import atomic_write, atomic_write_text
from harness.leaderboard import MISSING, REPORT_NAME, format_value
from harness.protocol import METASTABLE_EHULL, METRIC_SPECS, SG_SYMPREC, STABLE_EHULL
from harness.records import PER_SAMPLE_NAME, RECORD_NAME, load_record, resolve_record_path
from harness.report_relaxers import relaxer_comparison

PROPERTY_COLUMNS = ("density", "num_elems", "spacegroup")
PLOT_NAMES = {"spacegroup": "spacegroup.png", "density": "density.png", "num_elems": "num_elems.png",
              "ehull": "ehull.png"}
# First space-group number of each crystal system (International Tables), for the histogram's axis.
CRYSTAL_SYSTEMS = ((1, "triclinic"), (3, "monoclinic"), (16, "orthorhombic"), (75, "tetragonal"), (143, "trigonal"),
                   (168, "hexagonal"), (195, "cubic"))


@dataclass(frozen=True)
class Report:
    """What ``write_report`` wrote: the markdown, the plots, and notes on what was skipped."""

    markdown: Path
    plots: tuple[Path, ...]
    notes: tuple[str, ...]


# ---- test-split properties ------------------------------------------------------------------------------


def structure_properties(structure, symprec: float = SG_SYMPREC) -> dict[str, Any]:
    """Density (g/cm³), number of distinct elements and space group (1 when spglib fails), with the same
    functions the metrics use."""
    from harness.metrics.distributions import density, num_elements
    from harness.metrics.symmetry import spacegroup_number

    return {"density": density(structure), "num_elems": num_elements(structure),
            "spacegroup": spacegroup_number(structure, symprec)}


def properties_table(structures) -> pd.DataFrame:
    rows = [structure_properties(s) for s in structures]
    return pd.DataFrame(rows, columns=list(PROPERTY_COLUMNS))


def reference_properties(dataset: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Properties of every test structure, cached under ``cache_dir("props")`` by the split's sha256."""
    from harness.datasets import load_split
    from harness.paths import cache_dir

    split = load_split(dataset, "test", data_dir=data_dir)
    cache = cache_dir("props") / f"{dataset}-test-{split.sha256}-symprec{SG_SYMPREC}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    table = properties_table(split.structures)
    atomic_write(cache, lambda tmp: table.to_parquet(tmp, index=False))
    return table


# ---- plots ----------------------------------------------------------------------------------------------


def _fractions(values: pd.Series, bins: np.ndarray) -> np.ndarray:
    counts = values.value_counts().reindex(bins, fill_value=0).to_numpy(dtype=float)
    return counts / counts.sum() if counts.sum() else counts


def plot_spacegroups(samples: pd.Series, reference: pd.Series | None, path: Path, title: str) -> Path:
    """Mirrored histogram: valid samples above the axis, the test split below, so neither hides the other."""
    from matplotlib.ticker import FuncFormatter

    plt, fig, ax = new_figure()
    groups = np.arange(1, 231)
    edges = np.arange(0.5, 231.5)
    ax.stairs(_fractions(samples, groups), edges, fill=True, color=SAMPLE_COLOUR,
              label=f"valid samples (n={len(samples):,}), above")
    if reference is not None:
        ax.stairs(-_fractions(reference, groups), edges, fill=True, color=TEST_COLOUR,
                  label=f"test split (n={len(reference):,}), below")
    ax.axhline(0, color="black", lw=0.6)
    starts = [start for start, _ in CRYSTAL_SYSTEMS] + [231]
    for (start, name), end in zip(CRYSTAL_SYSTEMS, starts[1:]):
        ax.axvline(start - 0.5, color="grey", lw=0.5, ls=":")
        ax.text((start + end - 1) / 2, 0.98, name, transform=ax.get_xaxis_transform(), fontsize=7, va="top",
                ha="center", rotation=90, color="grey")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{abs(y):.2f}"))
    ax.set_xlim(0.5, 230.5)
    ax.set_xlabel(f"space group (spglib, symprec {SG_SYMPREC})")
    ax.set_ylabel("fraction of structures")
    ax.set_title(title, fontsize=10, pad=20)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    return save_figure(plt, fig, path)


def plot_density(samples: pd.Series, reference: pd.Series | None, path: Path, title: str) -> Path:
    plt, fig, ax = new_figure()
    pooled = pd.concat([samples, reference]) if reference is not None else samples
    upper = float(np.quantile(pooled, 0.995)) if len(pooled) else 1.0
    bins = np.linspace(0.0, max(upper, 1e-6), 61)
    if reference is not None:
        ax.hist(reference.clip(upper=bins[-1]), bins=bins, density=True, histtype="stepfilled", color=TEST_COLOUR, alpha=0.45,
                label=f"test split (n={len(reference):,})")
    ax.hist(samples.clip(upper=bins[-1]), bins=bins, density=True, histtype="step", color=SAMPLE_COLOUR, lw=1.4,
            label=f"valid samples (n={len(samples):,})")
    ax.set_xlabel("density (g/cm³); the last bin holds everything above the 99.5th percentile")
    ax.set_ylabel("probability density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def plot_num_elems(samples: pd.Series, reference: pd.Series | None, path: Path, title: str) -> Path:
    plt, fig, ax = new_figure()
    top = int(max(samples.max() if len(samples) else 1, reference.max() if reference is not None else 1))
    counts = np.arange(1, top + 1)
    width = 0.4 if reference is not None else 0.8
    if reference is not None:
        ax.bar(counts - width / 2, _fractions(reference, counts), width=width, color=TEST_COLOUR, alpha=0.6,
               label=f"test split (n={len(reference):,})")
    ax.bar(counts + (width / 2 if reference is not None else 0), _fractions(samples, counts), width=width,
           color=SAMPLE_COLOUR, alpha=0.85, label=f"valid samples (n={len(samples):,})")
    ax.set_xticks(counts)
    ax.set_xlabel("number of distinct elements")
    ax.set_ylabel("fraction of structures")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def plot_ehull(ehull: pd.Series, path: Path, title: str, *, label: str = "relaxed samples",
               other: pd.Series | None = None, other_label: str = "") -> Path:
    """Histogram of E_hull; ``other`` (the same samples on another hull) drawn as an outline beside it."""
    plt, fig, ax = new_figure()
    low, high = EHULL_RANGE
    below, above = int((ehull < low).sum()), int((ehull > high).sum())
    bins = np.linspace(low, high, 81)
    ax.hist(ehull.clip(low, high), bins=bins, histtype="stepfilled", color=SAMPLE_COLOUR, alpha=0.8, label=label)
    if other is not None and not other.empty:
        ax.hist(other.clip(low, high), bins=bins, histtype="step", color=OTHER_HULL_COLOUR, lw=1.2,
                label=f"{other_label} (stable {int((other <= STABLE_EHULL).sum())})")
    ax.axvline(STABLE_EHULL, color="black", lw=1.0, label=f"stable: E_hull ≤ {STABLE_EHULL:g}")
    ax.axvline(METASTABLE_EHULL, color="black", lw=1.0, ls="--", label=f"metastable: ≤ {METASTABLE_EHULL:g} eV/atom")
    ax.set_xlabel(f"E_hull (eV/atom), clipped to [{low:g}, {high:g}]: {below} below, {above} above")
    ax.set_ylabel("relaxed samples")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


# ---- the report -----------------------------------------------------------------------------------------


def _metric_text(metrics: dict[str, Any], key: str) -> str:
    column = next(c for c in METRIC_SPECS if c.key == key)
    return format_value(metrics.get(key), column.kind)


def cost_text(timings: dict[str, Any]) -> str:
    """Generation and evaluation time, and (records since the invocation ledger) wall, CPU and peak memory summed
    over every invocation; older records say that theirs cover the last invocation only."""
    def sec(value) -> str:
        return MISSING if value is None else f"{value:,.1f} s"

    text = f"generation {sec(timings.get('generation_s'))}, evaluation {sec(timings.get('evaluation_s'))}"
    if timings.get("invocations") is None:
        return text + " (recorded before per-invocation accounting: evaluation is the last invocation's only)"
    text += (f" over {timings['invocations']} invocation(s); wall {sec(timings.get('wall_s'))}, CPU "
             f"{sec(timings.get('cpu_s'))}, peak memory {timings.get('max_rss_gb')} GB in one process")
    if timings.get("peak_tree_rss_gb") is not None:
        text += f", {timings['peak_tree_rss_gb']} GB in all its processes together"
    if timings.get("cpus"):
        text += f"; on {' and '.join(timings['cpus'])}"
    if timings.get("killed_invocations"):
        text += f"; {timings['killed_invocations']} invocation(s) killed outright, counted to their last heartbeat"
    stages = timings.get("stages_final_invocation_s") or {}
    if stages:
        text += "; last invocation's stages: " + ", ".join(f"{k} {v:,.1f} s" for k, v in stages.items())
    return text


def _run_lines(record: dict[str, Any]) -> list[str]:
    hardware = record["provenance"]["hardware"]
    splits = record["splits"]
    lines = [
        f"- kind: {record['kind']}; tier: {record['tier']}; samples requested: {record['n_samples']:,}",
        f"- created: {record['created']}; protocol {record['protocol_version']}; "
        f"plugin {' '.join(filter(None, (record['plugin']['name'], record['plugin']['version'])))}",
        f"- hardware: {hardware['cpu']}" + (f" ({hardware['cores']} cores)" if hardware.get("cores") else "")
        + f", GPU: {hardware.get('gpu') or 'none'}",
        f"- reference: {splits['reference']} split; novelty against: {splits.get('novelty') or MISSING}; "
        f"model trained on: {splits.get('model_trained_on') or MISSING}"
        + ("" if splits["paper_training_split"] else " (**not** the paper's training split)"),
    ]
    lines.append(f"- cost: {cost_text(record.get('timings') or {})}")
    if record.get("external"):
        external = record["external"]
        lines.append(f"- external set: {external['model']} ({external.get('paper', MISSING)}), status "
                     f"**{external['status']}**, from `{external['source']}`")
        lines += [f"  - caveat: {caveat}" for caveat in external.get("caveats", [])]
    return lines


def _metrics_table(metrics: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = [[column.title, format_value(metrics.get(column.key), column.kind), f"`{column.key}`"]
            for column in METRIC_SPECS]
    return tabulate(rows, headers=["metric", "value", "record key"], tablefmt="github", disable_numparse=True)


REASON_COLUMNS = ("invalid_reason", "validity_reason")  # construction failures; failed validity checks


def _invalid_reasons(table: pd.DataFrame, limit: int = 8) -> list[str]:
    """The most common reasons samples are invalid, numbers masked so that "atoms 0.31 Å apart" groups."""
    invalid = table[~table["valid"].fillna(False).astype(bool)] if "valid" in table else table
    parts = []
    columns = [c for c in REASON_COLUMNS if c in invalid]
    for row in invalid[columns].itertuples(index=False):
        # A sample that was never built carries its reason twice ("X", and "not constructed: X"): count it once.
        reasons = {p.strip().removeprefix(NOT_CONSTRUCTED_PREFIX) for r in row if isinstance(r, str) for p in r.split("; ")}
        parts += sorted(re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "…", r) for r in reasons if r)
    if not parts:
        return []
    counts = pd.Series(parts).value_counts().sort_index().sort_values(ascending=False, kind="stable")
    lines = [f"- {count:,} × {reason}" for reason, count in counts.head(limit).items()]
    if len(counts) > limit:
        lines.append(f"- … and {len(counts) - limit} other reasons ({int(counts.iloc[limit:].sum()):,} samples)")
    return lines


def dataset_hull(record: dict[str, Any], data_dir: str | Path | None = None):
    """(the dataset hull the record's E_hull was taken against, None) or (None, why not); never builds one."""
    from harness.datasets import get_card
    from harness.stability.reference import load_or_build_dataset_hull

    hull_info = ((record.get("details") or {}).get("stability") or {}).get("hull") or {}
    if not hull_info:
        return None, "the record has no stability data"
    if not hull_info.get("dataset"):
        return None, f"the record's hull ({hull_info.get('name', 'unnamed')}) is not a dataset's own hull"
    try:
        card = get_card(hull_info["dataset"])
        hull = load_or_build_dataset_hull(card, data_dir=data_dir, progress=False, build=False)
    except Exception as exc:  # no split files, no cached or shipped hull: the section is skipped, not the report
        return None, f"the dataset hull is not available here ({type(exc).__name__}: {exc})"
    if hull.sha256 != hull_info.get("sha256"):
        return None, f"the hull available here ({hull.sha256[:12]}…) is not the record's ({hull_info.get('sha256')})"
    return hull, None


def hull_support(table: pd.DataFrame, hull) -> pd.Series:
    """For each relaxed sample with an E_hull: how many dataset compounds (elemental references not counted) lie
    in its chemical system, i.e. what its E_hull was measured against besides the elements."""
    from pymatgen.core import Composition

    from harness.stability.hull import _chemsys
    from harness.stability.ondemand import ELEMENT_PREFIX

    rows = table[table["e_hull"].notna()] if "e_hull" in table else table.iloc[0:0]
    counts: dict[str, int] = {}

    def compounds(formula: str) -> int:
        key = _chemsys(el.symbol for el in Composition(formula))
        if key not in counts:
            entries = hull.chemsys_entries(key.split("-"))
            counts[key] = sum(1 for e in entries if not e.attribute.startswith(ELEMENT_PREFIX))
        return counts[key]

    return rows["formula"].map(compounds).rename("n_compounds")


SUPPORT_BINS = ((0, 0, "none (elemental references only)"), (1, 4, "1–4"), (5, None, "5 or more"))


def _hull_support_lines(table: pd.DataFrame, hull) -> list[str]:
    support = hull_support(table, hull)
    if support.empty:
        return []
    if "stable" in table:  # the record's flag: a relaxation that did not converge is not stable at any E_hull
        stable = table.loc[support.index, "stable"].fillna(False).astype(bool)
    else:
        stable = table.loc[support.index, "e_hull"].astype(float) <= STABLE_EHULL
    rows = []
    for low, high, label in SUPPORT_BINS:
        mask = (support >= low) & (support <= (high if high is not None else np.inf))
        n, k = int(mask.sum()), int((mask & stable).sum())
        rows.append([label, f"{n:,}", f"{k:,}", f"{k / n:.3f}" if n else MISSING])
    from tabulate import tabulate

    alone = int(((support == 0) & stable).sum())
    return [
        "## Hull support of the relaxed subset", "",
        f"E_hull is taken against {hull.name} ({hull.size:,} entries): the dataset's own structures and the "
        "elements. Where a chemical system holds few dataset compounds, being below that hull is a weak test; "
        "a sample whose system holds none competes with the elemental references alone.", "",
        tabulate(rows, headers=["dataset compounds in the sample's chemical system", "relaxed (with E_hull)",
                                "stable", "stable rate"], tablefmt="github", disable_numparse=True), "",
        f"{alone:,} of the {int(stable.sum()):,} stable samples sit in chemical systems without a dataset "
        "compound.", "",
    ]


def write_report(record_path: str | Path, reference: pd.DataFrame | None, hull=None,
                 compare: tuple[Path, ...] = ()) -> Report:
    """Write the plots and ``report.md`` beside ``record_path``; ``reference`` holds the test split's properties
    (``reference_properties``), or None to plot the samples alone; ``hull``, the dataset hull the record's E_hull
    was taken against (``dataset_hull``), adds the hull-support table of the relaxed subset; ``compare``, records
    of the same samples relaxed by other relaxers (``report_relaxers.relaxer_siblings``), adds a section per relaxer."""
    record_path = resolve_record_path(record_path)
    record = load_record(record_path)
    run_dir = record_path.parent
    table = pd.read_parquet(run_dir / (record["files"].get("per_sample") or PER_SAMPLE_NAME))
    metrics = record["metrics"]
    valid = table[table["valid"].fillna(False).astype(bool)] if "valid" in table else table.iloc[0:0]
    name = f"{record['plugin']['name']} on {record['dataset']}"
    notes: list[str] = []
    if reference is None:
        notes.append("The test split was not available: the plots show the samples alone.")
    ref = (lambda column: reference[column].dropna()) if reference is not None else (lambda column: None)

    plots = [
        plot_spacegroups(valid["spacegroup"].dropna().astype(int), ref("spacegroup"), run_dir / PLOT_NAMES["spacegroup"],
                         f"{name}: space groups (sg JSD {_metric_text(metrics, 'sg_jsd')}, "
                         f"SymmCD variant {_metric_text(metrics, 'sg_jsd_symmcd')})"),
        plot_density(valid["density"].dropna(), ref("density"), run_dir / PLOT_NAMES["density"],
                     f"{name}: density (wdist {_metric_text(metrics, 'wdist_density')})"),
        plot_num_elems(valid["num_elems"].dropna().astype(int), ref("num_elems"), run_dir / PLOT_NAMES["num_elems"],
                       f"{name}: elements per structure (wdist {_metric_text(metrics, 'wdist_num_elems')})"),
    ]
    ehull = table["e_hull"].dropna() if "e_hull" in table else pd.Series(dtype=float)
    ehull = ehull[np.isfinite(ehull.astype(float))].astype(float)
    stale = run_dir / PLOT_NAMES["ehull"]
    if ehull.empty:
        notes.append("No stability data in this record (no relaxed subset with E_hull): the E_hull plot is skipped.")
        if stale.exists():
            stale.unlink()
    else:
        hull_name = (((record.get("details") or {}).get("stability") or {}).get("hull") or {}).get("name", "hull")
        other = None
        if "e_hull_dataset" in table:  # re-scored on a new hull: the previous (dataset's own) hull's E_hull
            other = table["e_hull_dataset"].dropna().astype(float)
            other = other[np.isfinite(other)]
        plots.append(plot_ehull(ehull, stale, f"{name}: E_hull of the relaxed subset (n={len(ehull):,}; stable "
                                              f"{_metric_text(metrics, 'stable_rate')}, "
                                              f"metastable {_metric_text(metrics, 'metastable_rate')})",
                                label=f"against {hull_name}", other=other,
                                other_label="against the dataset's own hull (protocol 1.1)"))

    lines = [f"# Report: {name}, run `{record['run_id']}`", "",
             f"Generated by `bench report` from [{RECORD_NAME}]({RECORD_NAME}) and its per-sample table.", "",
             "## Run", "", *_run_lines(record), "", "## Metrics", "", _metrics_table(metrics), "",
             f"Valid samples: {len(valid):,} of {len(table):,} rows in the per-sample table "
             f"({record['n_samples']:,} requested).", ""]
    reasons = _invalid_reasons(table)
    if reasons:
        lines += ["Most common reasons a sample is invalid (a sample may have several):", "", *reasons, ""]
    if hull is not None and not ehull.empty:
        lines += _hull_support_lines(table, hull)
    for other_path in compare:
        section, plot = relaxer_comparison(record, table, Path(other_path), run_dir)
        lines += section
        plots.append(plot)
    lines += ["## Plots", "",
              "Valid samples (all of them, not the 1,000-sample subset the Wasserstein distances use) against "
              "the test split.", ""]
    captions = {"spacegroup": "Space-group histogram", "density": "Density", "num_elems": "Number of elements",
                "ehull": "E_hull of the relaxed subset"}
    for plot in plots:
        key = next((k for k, v in PLOT_NAMES.items() if v == plot.name), None)
        if key is None:  # a comparison's plot, shown in its own section
            continue
        lines += [f"### {captions[key]}", "", f"![{captions[key]}]({plot.name})", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    markdown = atomic_write_text(run_dir / REPORT_NAME, "\n".join(lines).rstrip("\n") + "\n")
    return Report(markdown=markdown, plots=tuple(plots), notes=tuple(notes))
