"""``bench report`` for a conditional record: the achieved formation energy against each target (the SymmBFN paper's
figure 3) beside the training labels, and report.md with the per-target table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.io import atomic_write, atomic_write_text
from harness.records import load_record
from harness.report import cost_text

PLOT_NAME = "conditional_formation_energy.png"


@dataclass(frozen=True)
class ConditionalReport:
    markdown: Path
    plots: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def training_labels(record: dict[str, Any], data_dir: str | Path | None = None) -> np.ndarray | None:
    """The labels the conditional model was trained on (the condition column of its training splits), when the
    split files are at hand; None otherwise."""
    from harness.datasets import DatasetError, load_split, read_split_column

    manifest = (record.get("checkpoint") or {}).get("manifest") or {}
    condition = (manifest.get("condition") or {}).get("column")
    splits = manifest.get("splits")
    if not condition or not splits:
        return None
    try:
        values = read_split_column(load_split(record["dataset"], splits, data_dir), condition)
    except DatasetError:
        return None
    return values[np.isfinite(values)]


def plot_achieved(table: pd.DataFrame, targets: list[float], labels: np.ndarray | None, path: Path,
                  title: str) -> Path:
    """One panel per target: the achieved formation energy of the metastable and of all relaxed samples, the target
    as a line, the training labels as a grey outline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = table["formation_energy_per_atom"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low = min([*targets, *(finite.tolist() or [0.0]), *(labels.tolist() if labels is not None else [])])
    high = max([*targets, *(finite.tolist() or [0.0]), *(labels.tolist() if labels is not None else [])])
    bins = np.linspace(np.floor(low * 2) / 2, np.ceil(high * 2) / 2, 61)
    fig, axes = plt.subplots(len(targets), 1, figsize=(7, 1.9 * len(targets) + 0.6), sharex=True, squeeze=False)
    for ax, target in zip(axes[:, 0], targets, strict=True):
        rows = table[table["target"] == target]
        achieved = rows["formation_energy_per_atom"].to_numpy(dtype=float)
        meta = rows["metastable"].to_numpy(dtype=bool)
        ok = np.isfinite(achieved)
        if labels is not None and len(labels):
            ax.hist(labels, bins=bins, density=True, histtype="step", color="0.6", label="training labels (DFT)")
        if ok.any():
            ax.hist(achieved[ok], bins=bins, density=True, alpha=0.35, color="tab:blue",
                    label=f"all relaxed ({int(ok.sum())})")
        if (ok & meta).any():
            ax.hist(achieved[ok & meta], bins=bins, density=True, alpha=0.7, color="tab:orange",
                    label=f"metastable ({int((ok & meta).sum())})")
        ax.axvline(target, color="black", linestyle="--", label=f"target {target:g}")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("formation energy per atom (eV/atom): relaxed CHGNet minus MP elemental references",
                           fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return path


def write_conditional_report(record_path: str | Path, data_dir: str | Path | None = None) -> ConditionalReport:
    """``report.md`` and the achieved-against-target plot beside a conditional record."""
    from harness.leaderboard import CONDITIONAL_HEADERS, _summary_cells
    from harness.leaderboard import format_value as fmt

    record_path = Path(record_path)
    record = load_record(record_path)
    run_dir = record_path.parent
    block = record["task"]["conditional"]
    table = pd.read_parquet(run_dir / record["files"]["per_sample"]) if record["files"].get("per_sample") else None
    notes = []
    plots = []
    labels = training_labels(record, data_dir)
    if labels is None:
        notes.append("the training labels are not at hand (split files or the manifest's condition missing): "
                     "the plot shows the samples alone")
    title = f"{record['plugin']['name']} on {record['dataset']}: conditioned on {block['property']}"
    if table is not None:
        plots.append(plot_achieved(table, [t["value"] for t in block["targets"]], labels, run_dir / PLOT_NAME, title))
    manifest = (record.get("checkpoint") or {}).get("manifest") or {}
    lines = [f"# Conditional run `{record['run_id']}`", "",
             f"- Generator: {record['plugin']['name']} {record['plugin']['version']}; checkpoint "
             f"`{(record.get('checkpoint') or {}).get('path')}` (sha256 {str((record.get('checkpoint') or {}).get('sha256'))[:12]}…), "
             f"{manifest.get('epochs', '?')} epochs",
             f"- Task `{record['task']['name']}` {record['task']['version']}: {block['property']} ({block['unit']}); "
             f"labels `{block['labels']}`, evaluation `{block['evaluation']}`",
             f"- Tier {record['tier']}: {record['n_samples']:,} samples over {len(block['targets'])} target(s), seed "
             f"{record['seeds']['sample']} at every target",
             f"- Cost: {cost_text(record['timings'])}",
             ""]
    if (manifest.get("init_from") or {}).get("epochs") is not None:
        source = manifest["init_from"]
        lines += [f"The conditional network was fine-tuned from the {source['epochs']}-epoch unconditional checkpoint "
                  f"(sha256 {source['sha256'][:12]}…) with the property input's new weights starting at zero, on "
                  f"{(manifest.get('condition') or {}).get('labelled_crystals', '?'):,} labelled crystals.", ""]
    headers = [h for h in CONDITIONAL_HEADERS if h not in ("model", "trained", "links")]
    rows = []
    for target in block["targets"]:
        m, d = target["metrics"], target.get("details") or {}
        rows.append([f"{record['tier']} ({target['n_samples']:,})", f"{target['value']:+.1f}",
                     fmt(m["stable_rate"], "rate"), fmt(m["metastable_rate"], "rate"), fmt(d.get("sun_rate"), "rate"),
                     f"{fmt(d.get('struct_valid_rate'), 'rate')} / {fmt(d.get('comp_valid_rate'), 'rate')}",
                     *_summary_cells((d.get("achieved") or {}).get("metastable"))])
    from tabulate import tabulate

    lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    lines += ["Achieved formation energy of all relaxed samples (whatever their E_hull):", ""]
    rows = []
    for target in block["targets"]:
        achieved = ((target.get("details") or {}).get("achieved") or {}).get("all_relaxed")
        rows.append([f"{target['value']:+.1f}", *_summary_cells(achieved)])
    lines += [tabulate(rows, headers=["target (eV/atom)", "median [IQR]", "mean abs. dev. from target", "within 0.5"],
                       tablefmt="github", disable_numparse=True), ""]
    if labels is not None:
        lines += [f"Training labels: {len(labels):,} values, median {np.median(labels):.2f}, 5th–95th percentile "
                  f"{np.percentile(labels, 5):.2f} to {np.percentile(labels, 95):.2f} eV/atom.", ""]
    if plots:
        lines += [f"![achieved formation energy against each target]({PLOT_NAME})", ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return ConditionalReport(path, tuple(plots), tuple(notes))


OPTIMISE_PLOT = "optimise_trajectories.png"
SR_PLOT = "optimise_sr.png"


def plot_success_rates(bars: list[tuple[str, dict[str, float]]], percents: list[float], path: Path,
                       title: str) -> Path:
    """SR5/SR10/SR15 as grouped bars: this record's (and, where given, its in-domain variant) beside the papers'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / max(1, len(bars))
    x = np.arange(len(percents))
    for i, (label, rates) in enumerate(bars):
        heights = [rates.get(f"sr{p:g}") for p in percents]
        heights = [np.nan if h is None else h for h in heights]
        hatch = "//" if "published" in label else None
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, heights, width=width, label=label, hatch=hatch,
               alpha=0.85 if hatch is None else 0.5)
    ax.set_xticks(x, [f"SR{p:g}" for p in percents])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of starts")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return path


def plot_trajectories(table: pd.DataFrame, thresholds: list[float], percents: list[float], path: Path,
                      title: str, unit: str, oracle: str = "relaxed CHGNet, MP references") -> Path:
    """Per start, the oracle's value of each scored decode along the optimisation (left) and the model's own
    predictor at the same steps (right), with the success thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for _, rows in table.groupby("start"):
        rows = rows.sort_values("decode_step")
        scored = rows[np.isfinite(rows["oracle_value"].to_numpy(dtype=float))]
        left.plot(scored["decode_step"], scored["oracle_value"], marker=".", linewidth=0.6, alpha=0.6)
        if rows["predicted"].notna().any():
            right.plot(rows["decode_step"], rows["predicted"], linewidth=0.6, alpha=0.6)
    for threshold, percent in zip(thresholds, percents, strict=True):
        for ax in (left, right):
            ax.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
        left.annotate(f"best {percent:g} %", (0, threshold), fontsize=7, va="bottom")
    left.set_title(f"oracle ({oracle})", fontsize=9)
    right.set_title("the model's own predictor (not the score)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(unit)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return path


def write_optimise_report(record_path: str | Path) -> ConditionalReport:
    """``report.md`` and the trajectories plot beside an optimise record."""
    from tabulate import tabulate

    from harness.leaderboard import format_value as fmt
    from harness.leaderboard import published_optimise_rows

    record_path = Path(record_path)
    record = load_record(record_path)
    run_dir = record_path.parent
    block = record["task"]["optimise"]
    details = (record.get("details") or {}).get("optimise") or {}
    table = pd.read_parquet(run_dir / record["files"]["per_sample"])
    unit = f"{block['property']} ({'eV/atom' if 'per_atom' in block['property'] else 'dataset unit'})"
    plot = plot_trajectories(table, block["reference"]["thresholds"], block["reference"]["percents"],
                             run_dir / OPTIMISE_PLOT,
                             f"{record['plugin']['name']} on {record['dataset']}: {block['starts']['n']} starts",
                             unit, oracle=(f"{block['oracle']['name']}, a trained network, unrelaxed"
                                           if block["oracle"].get("kind") == "supervised"
                                           else "relaxed CHGNet, MP references"))
    m = block["metrics"]
    bars = [(f"{record['plugin']['name']} (this record, every valid decode)", m)]
    if details.get("in_oracle_domain"):
        bars.append(("the same, decodes of a training composition type only", details["in_oracle_domain"]["metrics"]))
    bars += [(f"{p['method']} (published)", p["metrics"]) for p in published_optimise_rows(record["dataset"])]
    sr_plot = plot_success_rates(bars, block["reference"]["percents"], run_dir / SR_PLOT,
                                 f"{record['dataset']}: success rates of {block['starts']['n']} starts")
    manifest = (record.get("checkpoint") or {}).get("manifest") or {}
    lines = [f"# Optimisation run `{record['run_id']}`", "",
             f"- Generator: {record['plugin']['name']} {record['plugin']['version']}; checkpoint "
             f"`{(record.get('checkpoint') or {}).get('path')}`, {manifest.get('epochs', '?')} epochs"
             + (f" (predictor fine-tuned from the {manifest['init_from']['epochs']}-epoch model)"
                if (manifest.get("init_from") or {}).get("epochs") is not None else ""),
             f"- Task `optimise` {record['task']['version']}: {block['property']}, {block['better']} is better; "
             f"oracle `{block['oracle']['name']}`: {block['oracle']['description']}",
             *([f"- Oracle on the test split ({block['oracle']['test']['n']} rows): MAE "
                f"{block['oracle']['test']['mae']:.3f}, R² {block['oracle']['test']['r2']:.3f}, Spearman "
                f"{block['oracle']['test']['spearman']:.3f}; weights sha256 {block['oracle']['weights_sha256'][:12]}"]
               if block["oracle"].get("test") else []),
             f"- Starts: the first {block['starts']['n']} of the {block['starts']['split']} split; tier {record['tier']}",
             f"- Cost: {cost_text(record['timings'])} (generation: the optimisation and decoding; evaluation: the "
             f"scoring)",
             "",
             tabulate([[fmt(m["sr5"], "rate"), fmt(m["sr10"], "rate"), fmt(m["sr15"], "rate"), m["n_starts"],
                        m["n_failed"], f"{details.get('n_valid')} / {details.get('n_scored')} of "
                        f"{details.get('n_decodes')}"]],
                      headers=["SR5", "SR10", "SR15", "starts", "starts with no scored decode",
                               "decodes valid / scored"], tablefmt="github", disable_numparse=True), "",
             f"Thresholds (best {', '.join(f'{p:g}' for p in block['reference']['percents'])} %): "
             f"{', '.join(f'{t:g}' for t in block['reference']['thresholds'])} ({block['reference']['source']}).", ""]
    domain = details.get("in_oracle_domain")
    if domain:
        d = domain["metrics"]
        lines += [f"Only {domain['n_scored_in_domain']} of the {domain['n_scored']} scored decodes have a composition "
                  f"type the oracle was trained on ({domain['rule']}); elsewhere its value is an extrapolation. "
                  f"{domain['best_decode_in_domain']} of the {domain['n_starts_with_a_score']} starts' best decodes "
                  f"are inside. Counting only decodes inside: SR5 {fmt(d['sr5'], 'rate')}, SR10 "
                  f"{fmt(d['sr10'], 'rate')}, SR15 {fmt(d['sr15'], 'rate')}. Share inside by decode step: "
                  + ", ".join("–" if v is None else f"{v:.2f}" for v in domain["in_domain_by_decode_step"]) + ".", ""]
    own = (details.get("starts_own_values") or {}).get("median")
    if own is not None and details.get("start_value_median") is not None:
        lines += [f"The starts' own dataset values have median {own:.3f}; their best scored decodes, "
                  f"{details['start_value_median']:.3f}.", ""]
    errors = table["oracle_error"].dropna().map(lambda e: str(e).split(":")[0]).value_counts()
    if len(errors):
        lines += ["Decodes without a score, by reason:", "",
                  *(f"- {reason}: {count}" for reason, count in errors.items()), ""]
    lines += [f"![success rates beside the papers' (SyMat table 2)]({SR_PLOT})", "",
              f"![oracle and predictor along the optimisation]({OPTIMISE_PLOT})", ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return ConditionalReport(path, (sr_plot, plot))
