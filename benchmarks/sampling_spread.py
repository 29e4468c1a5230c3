"""How far would validity and coverage move if the same model drew another sample set? A bootstrap of a record.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/sampling_spread.py \
        results/mp20/external-diffcsppp/custom-aca3feb0d7d6-seed0 \
        --published struct_valid=0.9999 comp_valid=0.8581 cov_recall=0.9948 cov_precision=0.9966 \
        --published-source "SymmCD paper, table 2 (DiffCSP++)"

A published figure computed from a *different* draw of the same model differs from a record's figure by sampling
noise alone. This resamples the record's samples with replacement ``--n-boot`` times (seeded) and reports each
metric's bootstrap standard deviation, an estimate of one run's sampling SD. Two independent runs then differ
with SD sqrt(2)*SD, and ``z = (record - published) / (sqrt(2)*SD)`` says whether a gap is within that noise.

Validity rates are per-sample means, so their bootstrap is the usual one. Coverage is recomputed exactly as the
protocol does (nearest structure and composition fingerprints found separately, both cutoffs ``<=``, COV-P over
every requested sample) on each resample; a resample holds about 63% distinct samples, so COV-R's bootstrap
*level* is biased low and only its spread is reported. Reads the record's saved fingerprint chunks and the cached
test-split features; computes neither. Writes ``results/benchmarks/sampling_spread_<dataset>_<run>.json``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOP_K = 64
METRICS = ("struct_valid", "comp_valid", "valid", "cov_recall", "cov_precision")


def saved_fingerprints(run_dir: Path, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(struct, comp, ok) from the chunk files an evaluation saved under ``run_dir/fingerprints``."""
    from harness.metrics.fingerprints import read_chunk

    chunks: dict[int, list[Path]] = {}
    for path in (run_dir / "fingerprints").glob("chunk-*-*.npz"):
        chunks.setdefault(int(re.match(r"chunk-(\d+)-", path.name).group(1)), []).append(path)
    if not chunks:
        raise SystemExit(f"{run_dir}/fingerprints: no saved chunks; evaluate the run first")
    stale = sorted(str(p.name) for paths in chunks.values() if len(paths) > 1 for p in paths)
    if stale:  # an older sample set or featurizer left a chunk at the same offset: which one is this record's?
        raise SystemExit(f"{run_dir}/fingerprints: several chunks share an offset ({', '.join(stale)}); "
                         "delete the folder and re-run the evaluation")
    parts = [read_chunk(chunks[start][0]) for start in sorted(chunks)]
    if any(part is None for part in parts):
        raise SystemExit(f"{run_dir}/fingerprints: a chunk is unreadable; re-run the evaluation")
    ok = np.array([error is None for part in parts for error in part.errors])
    if len(ok) != n_samples:
        raise SystemExit(f"{run_dir}/fingerprints: chunks hold {len(ok)} rows, the record has {n_samples}")
    return np.concatenate([p.struct for p in parts]), np.concatenate([p.comp for p in parts]), ok


def distance_matrices(gen: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> np.ndarray:
    from scipy.spatial.distance import cdist

    out = np.empty((len(gen), len(ref)), dtype=np.float32)
    for start in range(0, len(gen), chunk):
        out[start : start + chunk] = cdist(gen[start : start + chunk], ref)
    return out


def nearest_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per reference (column): the rows of its ``k`` smallest distances, nearest first, and those distances."""
    part = np.argpartition(dist, k - 1, axis=0)[:k].T  # (n_ref, k), unordered
    d = np.take_along_axis(dist.T, part, axis=1)
    order = np.argsort(d, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(d, order, axis=1)


class Resampler:
    """The protocol's validity rates and coverage of any multiset of a record's samples (given by index)."""

    def __init__(self, flags, gen_s, gen_c, fp_ok, ref_s, ref_c, ref_ok, struct_cut: float, comp_cut: float):
        self.flags = {key: np.asarray(value, bool) for key, value in flags.items()}
        self.n = len(fp_ok)
        self.fp_rows = np.flatnonzero(fp_ok)
        ref_rows = np.flatnonzero(ref_ok)
        self.n_ref = len(ref_ok)  # a reference without a fingerprint is never covered
        self.cuts = (struct_cut, comp_cut)
        self.dist_s = distance_matrices(np.asarray(gen_s)[self.fp_rows], np.asarray(ref_s)[ref_rows])
        self.dist_c = distance_matrices(np.asarray(gen_c)[self.fp_rows], np.asarray(ref_c)[ref_rows])
        # COV-P of one sample does not depend on which other samples are drawn.
        self.precision_hit = np.zeros(self.n, dtype=bool)
        self.precision_hit[self.fp_rows] = (self.dist_s.min(axis=1) <= struct_cut) & (
            self.dist_c.min(axis=1) <= comp_cut
        )
        self.position_of = np.full(self.n, -1)
        self.position_of[self.fp_rows] = np.arange(len(self.fp_rows))
        # Each reference's K nearest samples (by structure and by composition): a resample misses all K with
        # probability ~e^-K, and the exact minimum is taken for any reference where that happens.
        k = min(TOP_K, len(self.fp_rows))
        self.near_s = nearest_k(self.dist_s, k) if k else None
        self.near_c = nearest_k(self.dist_c, k) if k else None

    @staticmethod
    def _nearest_among(drawn: np.ndarray, near: tuple[np.ndarray, np.ndarray], full: np.ndarray) -> np.ndarray:
        idx, dists = near
        hit = drawn[idx]  # (n_ref, k), ordered nearest first
        out = dists[np.arange(len(idx)), hit.argmax(axis=1)].astype(float)
        for j in np.flatnonzero(~hit.any(axis=1)):
            out[j] = full[drawn, j].min() if drawn.any() else np.inf
        return out

    def metrics(self, idx: np.ndarray) -> dict[str, float]:
        """Rates over the samples ``idx`` (repeats count again), as ``harness.metrics`` computes them."""
        idx = np.asarray(idx)
        rows = self.position_of[idx]
        drawn = np.zeros(len(self.fp_rows), dtype=bool)
        drawn[rows[rows >= 0]] = True
        covered = 0
        if self.near_s is not None and drawn.any():
            near_s = self._nearest_among(drawn, self.near_s, self.dist_s)
            near_c = self._nearest_among(drawn, self.near_c, self.dist_c)
            covered = np.count_nonzero((near_s <= self.cuts[0]) & (near_c <= self.cuts[1]))
        out = {key: float(flags[idx].mean()) for key, flags in self.flags.items()}
        out["cov_recall"] = covered / self.n_ref
        out["cov_precision"] = float(self.precision_hit[idx].mean())
        return out

    def bootstrap_sd(self, n_boot: int, seed: int) -> dict[str, float]:
        """Each metric's standard deviation over ``n_boot`` seeded resamples (with replacement, same size)."""
        rng = np.random.default_rng(seed)
        draws = [self.metrics(rng.integers(0, self.n, size=self.n)) for _ in range(n_boot)]
        return {key: float(np.std([d[key] for d in draws], ddof=1)) for key in draws[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--published", nargs="*", default=[], help="metric=value pairs to compare with")
    parser.add_argument("--published-source", default=None)
    parser.add_argument("--record", type=Path, default=None, help="record file (default: RUN_DIR/record.json)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import pandas as pd
    from common import record_header

    from harness.datasets import load_split
    from harness.metrics.reference import reference_features

    run_dir = args.run_dir.resolve()
    record = json.loads((args.record or run_dir / "record.json").read_text())
    dataset = record["dataset"]
    table = pd.read_parquet(run_dir / "per_sample.parquet")
    n = len(table)
    cutoffs = record["details"]["metrics"]["coverage"]
    struct_cut, comp_cut = cutoffs["struct_cutoff"], cutoffs["comp_cutoff"]

    gen_s, gen_c, fp_ok = saved_fingerprints(run_dir, n)
    reference, _ = reference_features(load_split(dataset, "test"))
    flags = {key: table[key].to_numpy(bool) for key in ("struct_valid", "comp_valid", "valid")}
    resampler = Resampler(flags, gen_s, gen_c, fp_ok, reference.struct_fp, reference.comp_fp, reference.fp_ok,
                          struct_cut, comp_cut)
    full = resampler.metrics(np.arange(n))
    for key in METRICS:  # the recomputation must equal the record, or the bootstrap is of something else
        if abs(full[key] - record["metrics"][key]) > 1e-9:
            raise SystemExit(f"recomputed {key} {full[key]} differs from the record's {record['metrics'][key]}")
    spread = resampler.bootstrap_sd(args.n_boot, args.seed)

    published = {}
    for pair in args.published:
        key, value = pair.split("=")
        if key not in METRICS:
            raise SystemExit(f"--published {pair}: metric must be one of {METRICS}")
        value = float(value)
        gap = full[key] - value
        published[key] = {
            "published": value,
            "record": round(full[key], 6),
            "gap": round(gap, 6),
            "sd_of_difference_of_two_runs": round(np.sqrt(2) * spread[key], 6),
            "z": round(gap / (np.sqrt(2) * spread[key]), 2) if spread[key] > 0 else None,
        }
    out = {
        **record_header("sampling_spread", argv, run_dir, record, REPO),
        "description": "bootstrap spread of validity and coverage over a record's samples",
        "n_samples": n,
        "n_fingerprinted": int(fp_ok.sum()),
        "n_reference": resampler.n_ref,
        "n_boot": args.n_boot,
        "seed": args.seed,
        "metrics": {key: round(full[key], 6) for key in METRICS},
        "bootstrap_sd": {key: round(value, 6) for key, value in spread.items()},
        "note": "COV-R bootstrap level is biased low (a resample holds ~63% distinct samples); only its SD is used",
        "published_source": args.published_source,
        "published": published,
    }
    path = args.out or REPO / "results" / "benchmarks" / f"sampling_spread_{dataset}_{run_dir.parent.name}.json"
    from harness.io import atomic_write_json

    atomic_write_json(path, out)
    print(json.dumps({k: out[k] for k in ("metrics", "bootstrap_sd", "published")}, indent=1))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
