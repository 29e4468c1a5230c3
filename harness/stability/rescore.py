"""Re-score a record's stability on another hull from its stored relaxed energies (no relaxation is redone).

A record's per-sample table keeps each relaxed sample's CHGNet energy per atom, its convergence and its formula,
which is all a formation-energy hull needs. Re-scoring recomputes E_hull, stable, metastable and S.U.N.; where the
protocol now judges novelty against more training-side structures (MP-20: val + train_recovered), the generated
structures of the subset that were novel are matched again against the new split (their relaxed structures are not
stored, so those were matched against the old split only; the record says so). Uniqueness is unchanged.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.evaluation_types import NOT_CONSTRUCTED_PREFIX

if TYPE_CHECKING:
    from harness.stability.hull import Hull
    from harness.stability.mp_reference import FormationEnergyHull

__all__ = ["RescoreError", "rescore_run"]

# Errors that leave a sample without a relaxed energy: nothing a hull can change.
_NO_ENERGY = (NOT_CONSTRUCTED_PREFIX, "relaxation failed", "relaxation did not finish", "energy correction failed")


class RescoreError(RuntimeError):
    """A record cannot be re-scored; the message names the record and why."""


def _is_number(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _row_e_hull(hull: FormationEnergyHull, formula: str, energy, converged: bool, steps,
                old_error) -> tuple[float | None, str | None]:
    """(E_hull, error) of one subset row on ``hull``, from its formula and stored relaxed energy."""
    from pymatgen.core import Composition

    if isinstance(old_error, str) and old_error.startswith(_NO_ENERGY):
        return None, old_error
    if not _is_number(energy):
        return None, old_error if isinstance(old_error, str) else "no relaxed energy stored"
    composition = Composition(formula)
    missing = hull.missing_elements(composition)
    if missing:
        return None, f"no reference for element(s) {', '.join(missing)}"
    e_hull, error = hull.e_above_hull(composition, hull.sample_energy(composition, float(energy)))
    if error is None and not converged:
        error = f"not converged within {int(steps)} steps"
    return e_hull, error


def rescore_run(
    run_dir: str | Path, *, hull: Hull | None = None, data_dir: str | Path | None = None, progress: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Re-score ``run_dir``'s stability on ``hull`` (default: the shipped MP hull), carrying the record past the
    protocol's pending stability changes (``protocol.version_after_rescore``).

    Returns the new record (written with the per-sample table unless ``write`` is false). A record without
    stability, whose table lacks relaxed energies, or that needs another re-score first, raises ``RescoreError``
    naming it.
    """
    import pandas as pd

    from harness.costs import cost_metrics
    from harness.datasets import load_split
    from harness.io import atomic_write
    from harness.protocol import METASTABLE_EHULL, STABLE_EHULL, novelty_split_name, version_after_rescore
    from harness.provenance import git_state
    from harness.records import PER_SAMPLE_NAME, RECORD_NAME, load_record, write_record
    from harness.stability import select_subset, train_split_info
    from harness.stability.matching import novel_flags, train_formula_index
    from harness.stability.mp_reference import FormationEnergyHull, load_shipped_mp_hull

    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_NAME
    record = load_record(record_path)
    info = (record.get("details") or {}).get("stability")
    if not info or record["metrics"].get("n_relaxed") is None:
        raise RescoreError(f"{record_path}: the record has no stability results to re-score")
    try:
        to_protocol = version_after_rescore(record["protocol_version"], "stability", has_stability=True)
    except ValueError as error:
        raise RescoreError(f"{record_path}: {error}") from None
    table_path = run_dir / record.get("files", {}).get("per_sample", PER_SAMPLE_NAME)
    if not table_path.exists():
        raise RescoreError(f"{table_path}: the per-sample table is missing")
    table = pd.read_parquet(table_path)
    needed = ("relaxed_energy_per_atom", "relax_converged", "relax_steps", "formula", "unique", "novel")
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise RescoreError(
            f"{table_path}: no stored {', '.join(absent)}; this record cannot be re-scored without relaxing "
            "again (run `bench evaluate` or `bench run` with --stability)"
        )
    hull = hull if hull is not None else load_shipped_mp_hull()
    if not isinstance(hull, FormationEnergyHull):
        raise RescoreError(f"hull {hull.name!r} cannot place a stored energy by composition alone")

    subset = select_subset(record["n_samples"], info["n_relax_requested"], info["subset_seed"])
    if len(subset) != info["subset_size"] or table.loc[subset, "relax_steps"].isna().any():
        raise RescoreError(f"{table_path}: the stored rows do not match the record's seeded relaxation subset")

    # E_hull of every subset row on the new hull; the previous hull's value is kept beside it.
    first_rescore = "e_hull_dataset" not in table.columns
    if first_rescore:
        table["e_hull_dataset"] = table["e_hull"]
    for index in subset:
        row = table.loc[index]
        e_hull, error = _row_e_hull(hull, row["formula"], row["relaxed_energy_per_atom"],
                                    bool(row["relax_converged"]), row["relax_steps"], row["stability_error"])
        table.loc[index, "e_hull"] = e_hull
        table.loc[index, "stability_error"] = error

    # Novelty against the protocol's split for this dataset, where that adds structures.
    old_split = info["train_split"]["name"]
    new_split = novelty_split_name(record["dataset"], old_split)
    novelty_note = f"unchanged ({old_split})"
    train = None
    if new_split != old_split:
        from harness.run_samples import record_samples

        train = load_split(record["dataset"], new_split, data_dir)
        samples = record_samples(run_dir, record, data_dir=data_dir)
        recheck = [i for i in subset if bool(table.loc[i, "novel"])]
        flags = novel_flags([samples[i].structure for i in recheck], train, index=train_formula_index(train),
                            progress=progress)
        for i, flag in zip(recheck, flags):
            table.loc[i, "novel"] = bool(flag)
        novelty_note = (
            f"generated structures of the {len(recheck)} previously novel subset samples matched against {new_split}; "
            f"their relaxed structures (not stored) were matched against {old_split} only"
        )

    rows = table.loc[subset]
    ok = rows["stability_error"].isna() & rows["e_hull"].notna()
    e_hull = pd.to_numeric(rows["e_hull"], errors="coerce")
    stable = ok & (e_hull <= STABLE_EHULL)
    metastable = ok & (e_hull <= METASTABLE_EHULL)
    novel = rows["novel"].astype(bool)
    sun = stable & rows["unique"].astype(bool) & novel
    for column, values in (("stable", stable), ("metastable", metastable), ("sun", sun)):
        table.loc[subset, column] = values.to_numpy()
    n = len(subset)
    previous = {k: record["metrics"].get(k) for k in ("stable_rate", "metastable_rate", "novel_rate", "sun_rate")}
    metrics = dict(record["metrics"])
    metrics.update({
        "stable_rate": int(stable.sum()) / n, "metastable_rate": int(metastable.sum()) / n,
        "novel_rate": int(novel.sum()) / n, "sun_rate": int(sun.sum()) / n,
        "n_stable": int(stable.sum()), "n_sun": int(sun.sum()),
    })
    generation_s = (record.get("timings") or {}).get("generation_s")
    metrics.update(cost_metrics(generation_s, record["n_samples"], metrics))

    missing = sorted({f for f, err in zip(rows["formula"], rows["stability_error"])
                      if isinstance(err, str) and err.startswith("no reference for element")})
    history = list(info.get("rescored", []))
    history.append({
        "rescore": "stability",
        "from_protocol": record["protocol_version"],
        "to_protocol": to_protocol,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_state().get("commit"),
        "previous_hull": {k: info["hull"].get(k) for k in ("name", "sha256", "source")},
        "previous_metrics": previous,
        "energies": "the stored relaxed CHGNet energies (no relaxation redone)",
        "novelty": novelty_note,
        "e_hull_dataset_column": "E_hull on the previous hull" if first_rescore else "kept from the first re-score",
    })
    info = {
        **info,
        "hull": hull.describe(),
        "corrections": hull.describe().get("corrections"),
        "compositions_without_reference": missing,
        "n_metastable": int(metastable.sum()),
        "n_novel": int(novel.sum()),
        "stable_definition": f"converged and E_hull <= {STABLE_EHULL} eV/atom",
        "rescored": history,
    }
    if train is not None:
        info["train_split"] = train_split_info(train)
        record["splits"] = {**record["splits"], "novelty": train.name}
        record["data"] = {**record["data"], "novelty_sha256": train.sha256}
    record["details"] = {**record["details"], "stability": info}
    record["metrics"] = metrics
    record["protocol_version"] = to_protocol
    if write:
        atomic_write(table_path, lambda p: table.to_parquet(p))
        write_record(run_dir, record)
    return record
