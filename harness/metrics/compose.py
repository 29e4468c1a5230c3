"""The composer the runner calls: every distribution metric of docs/protocol.md for one sample set vs the test split."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.evaluation_types import NOT_CONSTRUCTED_PREFIX, FamilyResult, Sample
from harness.executors import default_executor
from harness.metrics import coverage as cov
from harness.metrics import distributions as dist
from harness.metrics import symmetry as sym
from harness.metrics.fingerprints import (
    featurizer_versions,
    fingerprint_structures,
    fingerprint_structures_resumable,
    magpie_scaler,
    structure_fingerprint_impl,
)
from harness.metrics.reference import reference_features
from harness.metrics.validity import comp_validity, min_interatomic_distance, struct_validity
from harness.parallel import Executor
from harness.protocol import MIN_INTERATOMIC_DISTANCE, MIN_VOLUME, N_WDIST_SAMPLES, SG_SYMPREC, family_keys

__all__ = [
    "COMP_INVALID_REASON",
    "TABLE_COLUMNS",
    "describe_sample",
    "evaluate",
    "is_valid",
    "valid_sample_metrics",
    "validity_rates",
    "with_comp_reason",
]

TABLE_COLUMNS = (
    "formula",
    "struct_valid",
    "comp_valid",
    "valid",
    "density",
    "num_elems",
    "spacegroup",
    "fingerprint_error",
    "validity_reason",
)
# The protocol's keys this family fills: validity, coverage, distributions and space groups.
METRICS = family_keys("distribution")


def describe_sample(structure) -> dict:
    """Validity, properties and space group of one constructed sample (one executor work unit)."""
    spacegroup, sg_error = sym.analyse_spacegroup(structure, SG_SYMPREC)
    return {
        "formula": structure.composition.reduced_formula,
        "struct_valid": struct_validity(structure),
        "comp_valid": comp_validity(structure),
        "min_distance": min_interatomic_distance(structure),
        "volume": float(structure.volume),
        "density": dist.density(structure),
        "num_elems": dist.num_elements(structure),
        "spacegroup": spacegroup,
        "sg_error": sg_error,
    }


COMP_INVALID_REASON = "not charge balanced (SMACT)"
_FINGERPRINT_REASON = "fingerprint failed: "


def is_valid(struct_valid, comp_valid, fingerprint_error) -> bool:
    """CDVAE's valid: structurally and compositionally valid, and fingerprinted (no fingerprint error)."""
    return bool(struct_valid and comp_valid and fingerprint_error is None)


def _validity_reason(row: dict) -> str | None:
    reasons = []
    if row.get("construct_error"):
        return f"{NOT_CONSTRUCTED_PREFIX}{row['construct_error']}"
    if row.get("describe_error"):
        reasons.append(f"analysis failed: {row['describe_error']}")
    elif not row["struct_valid"]:
        if row["volume"] < MIN_VOLUME:
            reasons.append(f"volume {row['volume']:.3g} Å³ < {MIN_VOLUME}")
        else:
            reasons.append(f"atoms {row['min_distance']:.3g} Å apart (< {MIN_INTERATOMIC_DISTANCE})")
    if not row["comp_valid"]:
        reasons.append(COMP_INVALID_REASON)
    if row.get("fingerprint_error"):
        reasons.append(f"{_FINGERPRINT_REASON}{row['fingerprint_error']}")
    return "; ".join(reasons) or None


def with_comp_reason(reason: str | None, comp_valid: bool) -> str | None:
    """A constructed sample's ``validity_reason`` with the compositional part as ``comp_valid`` now says: where
    ``_validity_reason`` puts it (after the structural part, before a fingerprint failure), or taken out."""
    parts = [part for part in (reason or "").split("; ") if part and part != COMP_INVALID_REASON]
    if not comp_valid:
        at = next((k for k, part in enumerate(parts) if part.startswith(_FINGERPRINT_REASON)), len(parts))
        parts.insert(at, COMP_INVALID_REASON)
    return "; ".join(parts) or None


def _describe_all(samples, executor, timeout_s) -> list[dict]:
    built = [k for k, s in enumerate(samples) if s.structure is not None]
    outcomes = executor.map(
        describe_sample, [samples[k].structure for k in built], timeout_s=timeout_s, desc="validity"
    )
    rows = [
        {
            "formula": None,
            "struct_valid": False,
            "comp_valid": False,
            "density": np.nan,
            "num_elems": np.nan,
            "spacegroup": np.nan,
            "construct_error": s.reason or "not constructed",
        }
        for s in samples
    ]
    for k, outcome in zip(built, outcomes):
        if outcome.ok:
            rows[k] = dict(outcome.value)
            continue
        structure = samples[k].structure
        try:  # composition alone is cheap and safe; keep it when the structural analysis hung or raised
            comp_ok, formula = comp_validity(structure), structure.composition.reduced_formula
        except Exception:
            comp_ok, formula = False, None
        rows[k] = {
            "formula": formula,
            "struct_valid": False,
            "comp_valid": comp_ok,
            "density": np.nan,
            "num_elems": np.nan,
            "spacegroup": np.nan,
            "describe_error": outcome.error,
        }
    return rows


def _rate(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if flags.size else None


def evaluate(
    samples: Sequence[Sample],
    test,
    *,
    cov_cutoffs: tuple[float, float],
    seed: int,
    executor: Executor | None = None,
    progress: bool = True,
    timeout_s: float = 120.0,
    work_dir: Path | None = None,
) -> FamilyResult:
    """Validity, coverage, property and space-group metrics of ``samples`` against the ``test`` split.

    ``cov_cutoffs``: (structure, composition) coverage cutoffs, ``coverage_cutoffs(card)`` of the dataset. Every
    sample counts in every denominator; a sample with ``structure=None`` is invalid. ``valid`` also
    requires a fingerprint (CDVAE marks a crystal whose fingerprint raises invalid). With ``work_dir`` the
    samples' fingerprints are saved there in chunks, so an interrupted evaluation resumes.
    """
    samples = list(samples)
    times: dict[str, float] = {}
    own_executor = executor is None
    executor = executor or default_executor(progress=progress)
    struct_cutoff, comp_cutoff = cov_cutoffs
    try:
        start = time.perf_counter()
        reference, cache_info = reference_features(test, executor=executor, timeout_s=timeout_s)
        times["reference"] = time.perf_counter() - start
        start = time.perf_counter()
        rows = _describe_all(samples, executor, timeout_s)
        times["validity_properties_spacegroup"] = time.perf_counter() - start
        start = time.perf_counter()
        structures = [s.structure for s in samples]
        if work_dir is None:
            fps = fingerprint_structures(structures, executor=executor, timeout_s=timeout_s, desc="fingerprints")
        else:
            fps = fingerprint_structures_resumable(
                structures, Path(work_dir), executor=executor, timeout_s=timeout_s, desc="fingerprints"
            )
        times["fingerprints"] = time.perf_counter() - start
    finally:
        if own_executor:
            executor.close()

    start = time.perf_counter()
    fp_ok = fps.ok
    for row, error in zip(rows, fps.errors):
        row["fingerprint_error"] = error if (error and not row.get("construct_error")) else None
        row["valid"] = is_valid(row["struct_valid"], row["comp_valid"], error)
        row["validity_reason"] = _validity_reason(row)
    table = pd.DataFrame(rows, index=pd.Index([s.index for s in samples], name="index"))
    table = table.reindex(columns=list(TABLE_COLUMNS)).astype(
        {
            "struct_valid": bool,
            "comp_valid": bool,
            "valid": bool,
            "density": float,
            "num_elems": "Int64",
            "spacegroup": "Int64",
        }
    )
    cov_recall, cov_precision = cov.coverage(
        fps.struct[fp_ok],
        fps.comp[fp_ok],
        reference.struct_fp,
        reference.comp_fp,
        struct_cutoff=struct_cutoff,
        comp_cutoff=comp_cutoff,
        n_generated=len(samples),
        ref_ok=reference.fp_ok,
    )
    times["coverage"] = time.perf_counter() - start

    start = time.perf_counter()
    distances, valid_info = valid_sample_metrics(table, reference, seed=seed)
    times["distributions_symmetry"] = time.perf_counter() - start

    rates = validity_rates(table)
    metrics = {
        **rates,
        "cov_recall": cov_recall,
        "cov_precision": cov_precision,
        **distances,
    }
    fp_failures = Counter(e for e in table["fingerprint_error"] if e)
    describe_failures = Counter(r["describe_error"] for r in rows if r.get("describe_error"))
    sample_fp_seconds = [s for s, e in zip(fps.seconds, fps.errors) if e is None]
    info = {
        "n_samples": len(samples),
        "n_constructed": int(sum(s.structure is not None for s in samples)),
        "n_valid": valid_info["n_valid"],
        "valid_definition": "struct_valid and comp_valid and fingerprint computed (CDVAE)",
        "wdist": valid_info["wdist"],
        "coverage": {
            "struct_cutoff": struct_cutoff,
            "comp_cutoff": comp_cutoff,
            "comparison": "<=",
            "denominator_precision": len(samples),
            "n_fingerprinted": int(fp_ok.sum()),
            "n_reference": len(reference),
            "n_reference_failed": int((~reference.fp_ok).sum()),
            "magpie_scaler_source": magpie_scaler()[2],
        },
        "symprec": {
            "samples": SG_SYMPREC,
            "test_sg_jsd": SG_SYMPREC,
            "test_sg_jsd_symmcd": 0.01,
            "n_valid_samples_used": valid_info["n_valid_samples_used"],
        },
        "featurizer_versions": featurizer_versions(),
        "structure_fingerprint_impl": structure_fingerprint_impl(),
        "reference_cache": cache_info,
        "executor": {
            "type": type(executor).__name__,
            "workers": getattr(executor, "workers", None),
            "timeout_s": timeout_s,
        },
        "fingerprint_failures": {"count": int(sum(fp_failures.values())), "reasons": dict(fp_failures)},
        "analysis_failures": {
            "count": int(sum(describe_failures.values())),
            "reasons": dict(describe_failures),
        },
        "spglib_failures": int(sum(1 for r in rows if r.get("sg_error"))),
        "fingerprint_seconds_per_sample": float(np.mean(sample_fp_seconds)) if sample_fp_seconds else None,
        "wall_seconds": times,
    }
    return FamilyResult(metrics, table, info)


def validity_rates(table: pd.DataFrame) -> dict[str, float | None]:
    """``struct_valid``, ``comp_valid`` and ``valid``: the fractions of the per-sample table's rows (every requested
    sample) whose flag is set."""
    return {key: _rate(table[key].to_numpy(bool)) for key in ("struct_valid", "comp_valid", "valid")}


def valid_sample_metrics(table: pd.DataFrame, reference, *, seed: int) -> tuple[dict[str, float | None], dict]:
    """The metrics over the valid samples of the per-sample table (its ``valid``, ``density``, ``num_elems`` and
    ``spacegroup`` columns, rows in sample order) against the reference split's features: ``wdist_density`` and
    ``wdist_num_elems`` on the seeded subset, ``sg_jsd`` and ``sg_jsd_symmcd`` on all of them; plus what the
    record's details say of them (``n_valid``, the ``wdist`` block, ``n_valid_samples_used``)."""
    valid_positions = np.flatnonzero(table["valid"].to_numpy(bool))
    subset = dist.wdist_subset(valid_positions, seed=seed, n=N_WDIST_SAMPLES)
    chosen = list(subset.indices)
    ref_density = reference.density[np.isfinite(reference.density)]
    wdist_density = dist.wdist(table["density"].to_numpy(float)[chosen], ref_density)
    wdist_num_elems = dist.wdist(table["num_elems"].to_numpy(float)[chosen], reference.num_elems)
    valid_sg = table["spacegroup"].to_numpy()[valid_positions].astype(np.int64)
    metrics = {
        "wdist_density": wdist_density,
        "wdist_num_elems": wdist_num_elems,
        "sg_jsd": sym.sg_jsd(valid_sg, reference.spacegroup),
        "sg_jsd_symmcd": sym.sg_jsd_symmcd(valid_sg, reference.spacegroup_symmcd),
    }
    info = {
        "n_valid": int(valid_positions.size),
        "wdist": {
            "seed": seed,
            "rng": "numpy.random.default_rng(seed).choice(n_valid, size, replace=False) over valid samples "
            "in index order",
            "subset_size": len(chosen),
            "requested": subset.requested,
            "n_valid": subset.n_valid,
            "note": subset.note,
            "n_reference": int(ref_density.size),
        },
        "n_valid_samples_used": int(valid_sg.size),
    }
    return metrics, info
