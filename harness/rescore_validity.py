"""Re-score a record's compositional validity and the metrics over its valid samples from its per-sample table.

Protocol 1.3 changed compositional validity (SMACT 2.2.1's data and Pauling rule). A record's per-sample table keeps
each sample's formula, struct_valid, comp_valid, valid, fingerprint error, density, number of elements and space
group: compositional validity is a function of the formula, and every metric over the valid samples is computed
from those columns and the test split's features by the composer's own functions (``validity_rates``,
``valid_sample_metrics``), so nothing is rebuilt or fingerprinted again. Coverage is over every fingerprinted sample,
valid or not, and stability over the seeded subset: neither can change. When no sample's valid flag changes, the
metrics over the valid samples are kept as they are and the test split is not read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.stability.rescore import RescoreError

__all__ = ["RESCORED_KEYS", "comp_flags", "rescore_validity"]

VALID_SET_KEYS = ("wdist_density", "wdist_num_elems", "sg_jsd", "sg_jsd_symmcd")
RESCORED_KEYS = ("comp_valid", "valid", *VALID_SET_KEYS)
TABLE_NEEDS = ("formula", "struct_valid", "comp_valid", "valid", "density", "num_elems", "spacegroup",
               "fingerprint_error")
WHAT = ("comp_valid of each sample from its formula by harness.metrics.validity.comp_validity (SMACT 2.2.1's data "
        "and Pauling rule), then valid and the metrics over the valid samples from the per-sample table and the "
        "test split's features; no sample read again, coverage and stability unchanged by definition")


def comp_flags(formulas, rule: Callable[[str], bool] | None = None) -> np.ndarray:
    """Compositional validity of each formula (``None``: a sample that was never built, invalid), each distinct
    formula judged once; a formula the rule cannot judge is invalid, as the composer counts it."""
    if rule is None:
        from harness.metrics.validity import comp_validity as rule
    verdicts: dict[str, bool] = {}
    flags = np.zeros(len(formulas), dtype=bool)
    for k, formula in enumerate(formulas):
        if not isinstance(formula, str):
            continue
        if formula not in verdicts:
            try:
                verdicts[formula] = bool(rule(formula))
            except Exception:  # e.g. a non-integer amount: the composer's fallback counts it invalid too
                verdicts[formula] = False
        flags[k] = verdicts[formula]
    return flags


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _reference_features(record: dict, data_dir: str | Path | None):
    """The test split's features the record was scored against, through the composer's cache (shipped for MP-20 and
    Perov-5); the split must be the one the record names by sha256."""
    from harness.datasets import load_split
    from harness.metrics.reference import reference_features

    split = load_split(record["dataset"], record["splits"]["reference"], data_dir)
    if split.sha256 != record["data"]["reference_sha256"]:
        raise RescoreError(f"{record['dataset']}/{split.name}: sha256 {split.sha256[:16]}... is not the record's "
                           f"reference {record['data']['reference_sha256'][:16]}...")
    return reference_features(split)[0]


def rescore_validity(
    run_dir: str | Path, *, data_dir: str | Path | None = None, write: bool = True,
    rule: Callable[[str], bool] | None = None, force: bool = False,
) -> dict[str, Any]:
    """Re-score ``run_dir``'s compositional validity and the metrics over its valid samples under the protocol's
    rule, carrying the record past its pending validity change (``protocol.version_after_rescore``).

    Returns the new record (written, with its per-sample table where a flag changed, unless ``write`` is false); its
    ``details.metrics.rescored`` says what changed. ``rule`` (formula -> bool) replaces the protocol's for a check;
    ``force`` recomputes every metric even where no flag changed. A table without the columns needed raises
    ``RescoreError`` naming it.
    """
    import pandas as pd

    from harness.io import atomic_write
    from harness.metrics.compose import is_valid, valid_sample_metrics, validity_rates, with_comp_reason
    from harness.protocol import version_after_rescore
    from harness.provenance import git_state
    from harness.records import PER_SAMPLE_NAME, RECORD_NAME, load_record, write_record

    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_NAME
    record = load_record(record_path)
    try:
        to_protocol = version_after_rescore(record["protocol_version"], "validity",
                                            has_stability=record["metrics"].get("n_relaxed") is not None)
    except ValueError as error:
        raise RescoreError(f"{record_path}: {error}") from None
    table_path = run_dir / record.get("files", {}).get("per_sample", PER_SAMPLE_NAME)
    if not table_path.exists():
        raise RescoreError(f"{table_path}: the per-sample table is missing")
    table = pd.read_parquet(table_path)
    absent = [c for c in TABLE_NEEDS if c not in table.columns]
    if absent:
        raise RescoreError(f"{table_path}: no {', '.join(absent)} column; re-evaluate the samples instead")
    if len(table) != record["n_samples"]:
        raise RescoreError(f"{table_path}: {len(table):,} rows for {record['n_samples']:,} samples")

    struct = table["struct_valid"].to_numpy(bool)
    old_comp = table["comp_valid"].to_numpy(bool)
    old_valid = table["valid"].to_numpy(bool)
    fp_errors = [_text(e) for e in table["fingerprint_error"]]
    if [is_valid(*flags) for flags in zip(struct, old_comp, fp_errors)] != old_valid.tolist():
        raise RescoreError(f"{table_path}: its valid column is not struct_valid, comp_valid and fingerprinted")
    new_comp = comp_flags(table["formula"].tolist(), rule)
    new_valid = np.array([is_valid(*flags) for flags in zip(struct, new_comp, fp_errors)], dtype=bool)
    comp_changed = np.flatnonzero(new_comp != old_comp)
    valid_changed = np.flatnonzero(new_valid != old_valid)

    if comp_changed.size:
        positions = table.index[comp_changed]
        table.loc[positions, "comp_valid"] = new_comp[comp_changed]
        table.loc[positions, "valid"] = new_valid[comp_changed]
        if "validity_reason" in table.columns:
            table.loc[positions, "validity_reason"] = [
                with_comp_reason(_text(table.at[i, "validity_reason"]), bool(flag))
                for i, flag in zip(positions, new_comp[comp_changed])
            ]
    metrics = dict(record["metrics"])
    details = dict(record["details"]["metrics"])
    recomputed: list[str] = []
    if comp_changed.size or force:
        metrics.update(validity_rates(table))
        recomputed += ["struct_valid", "comp_valid", "valid"]
    if valid_changed.size or force:
        seed = record["seeds"]["wdist_subset"]
        distances, valid_info = valid_sample_metrics(table, _reference_features(record, data_dir), seed=seed)
        metrics.update(distances)
        recomputed += list(VALID_SET_KEYS)
        details["n_valid"] = valid_info["n_valid"]
        details["wdist"] = {**details.get("wdist", {}), **valid_info["wdist"]}
        details["symprec"] = {**details.get("symprec", {}), "n_valid_samples_used": valid_info["n_valid_samples_used"]}

    labels = [int(i) for i in table.index]
    previous = {key: record["metrics"].get(key) for key in RESCORED_KEYS}
    changed_keys = [key for key in RESCORED_KEYS if metrics.get(key) != previous[key]]
    history = list(details.get("rescored", []))
    history.append({
        "rescore": "validity",
        "from_protocol": record["protocol_version"],
        "to_protocol": to_protocol,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_state().get("commit"),
        "what": WHAT,
        "samples_changed": {"comp_valid": [labels[k] for k in comp_changed],
                            "valid": [labels[k] for k in valid_changed]},
        "recomputed": recomputed,
        "changed": changed_keys,
        "previous_metrics": previous,
        "result": (f"comp_valid of {comp_changed.size} sample(s) changed, valid of {valid_changed.size}: "
                   f"{', '.join(changed_keys) or 'no metric'} changed" if comp_changed.size
                   else "no sample's compositional validity changed: every metric kept"),
    })
    details["rescored"] = history
    record["details"] = {**record["details"], "metrics": details}
    record["metrics"] = metrics
    record["protocol_version"] = to_protocol
    if write:
        if comp_changed.size:
            atomic_write(table_path, lambda p: table.to_parquet(p))
        write_record(run_dir, record)
    return record
