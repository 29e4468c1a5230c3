"""Composes the metric families over one sample set: validity/coverage/distributions/symmetry, then stability."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.cards import DatasetCard, Split
from harness.datasets import load_split
from harness.evaluation_types import Sample
from harness.executors import default_executor
from harness.protocol import METRIC_KEYS, SAMPLE_FILE_N_RELAX, novelty_split_name
from harness.relaxer import PROTOCOL_RELAXER


@dataclass(frozen=True)
class EvaluationRequest:
    """How to evaluate a sample set; every seed and split it uses ends up in the record."""

    dataset: str
    eval_seed: int = 0
    stability: bool = True
    n_relax: int = SAMPLE_FILE_N_RELAX  # a run relaxes its tier's n_relax (the runner sets it)
    novelty_split: str | None = "train"
    hull: str | None = None  # "mp" (protocol default when None), "dataset", or a hull file's path
    hull_sha256: str | None = None  # pins the --hull file (else $XTALBENCH_HULL_SHA256)
    data_dir: Path | None = None
    workers: int | None = None
    progress: bool = True
    executor: str = "process"  # "process" (a local pool) or "dask"; the metrics never depend on it
    scheduler: str | None = None  # a Dask scheduler's address (implies "dask"); None starts a local cluster
    relaxer: str = PROTOCOL_RELAXER  # who relaxes the stability subset; any other is shown apart from protocol rows

    def __post_init__(self) -> None:
        if self.executor not in ("process", "dask"):
            raise ValueError(f"unknown executor {self.executor!r}: expected 'process' or 'dask'")
        if self.scheduler is not None and self.executor != "dask":
            object.__setattr__(self, "executor", "dask")


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    table: pd.DataFrame
    details: dict[str, Any]
    reference: Split
    novelty: Split | None
    seconds: float


def base_table(samples: Sequence[Sample]) -> pd.DataFrame:
    """One row per requested sample: whether it was constructed and, if not, why."""
    rows = []
    for sample in samples:
        rows.append({
            "index": sample.index,
            "constructed": sample.structure is not None,
            "invalid_reason": sample.reason,
            "formula": sample.structure.composition.reduced_formula if sample.structure is not None else None,
            "n_atoms": len(sample.structure) if sample.structure is not None else None,
        })
    return pd.DataFrame(rows).set_index("index")


def merge_tables(base: pd.DataFrame, *tables: pd.DataFrame) -> pd.DataFrame:
    merged = base
    for table in tables:
        extra = table.drop(columns=[c for c in table.columns if c in merged.columns], errors="ignore")
        merged = merged.join(extra, how="left")
    return merged


def evaluate(samples: Sequence[Sample], request: EvaluationRequest, card: DatasetCard,
             work_dir: Path | None = None) -> Evaluation:
    """Run every metric family the request asks for against ``card``, the request's dataset as the command resolved
    it; missing families leave their keys ``None``."""
    from harness import metrics as metric_family

    if card.name != request.dataset:
        raise ValueError(f"the evaluation asks for dataset {request.dataset!r} but was given the card of {card.name!r}")
    started = time.perf_counter()
    cov_cutoffs = metric_family.coverage_cutoffs(card)
    reference = load_split(card, "test", request.data_dir)
    novelty = None
    if request.stability:
        # Fail before the long work starts: novelty needs a training split, and a missing one is refused by name.
        novelty = load_split(card, novelty_split_name(card.name, request.novelty_split), request.data_dir)

    values: dict[str, Any] = {key: None for key in METRIC_KEYS}
    details: dict[str, Any] = {}
    with default_executor(request.workers, progress=request.progress, kind=request.executor,
                          scheduler=request.scheduler) as executor:
        result = metric_family.evaluate(
            samples, reference, cov_cutoffs=cov_cutoffs, seed=request.eval_seed, progress=request.progress,
            executor=executor, work_dir=(work_dir / "fingerprints") if work_dir else None,
        )
    values.update(result.metrics)
    details["metrics"] = result.info
    tables = [result.table]
    if request.stability:
        from harness import stability

        stab = stability.evaluate(
            samples, dataset=card, train=novelty, n_relax=request.n_relax, seed=request.eval_seed,
            hull=request.hull, hull_sha256=request.hull_sha256, work_dir=(work_dir / "stability") if work_dir else None,
            data_dir=request.data_dir, workers=request.workers, progress=request.progress, relaxer=request.relaxer,
        )
        values.update(stab.metrics)
        details["stability"] = stab.info
        tables.append(stab.table)
    unknown = set(values) - set(METRIC_KEYS)
    if unknown:
        raise KeyError(f"metric families returned keys outside the protocol: {sorted(unknown)}")
    table = merge_tables(base_table(samples), *tables)
    return Evaluation(values, table, details, reference, novelty, time.perf_counter() - started)
