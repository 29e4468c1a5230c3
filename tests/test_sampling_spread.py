"""benchmarks/sampling_spread.py: its resampled metrics are the protocol's, on the full set and on any resample."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.metrics.coverage import coverage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import sampling_spread  # noqa: E402


def _synthetic(seed=0, n=80, n_ref=50):
    rng = np.random.default_rng(seed)
    gen_s, gen_c = rng.normal(size=(n, 4)), rng.normal(size=(n, 5))
    ref_s, ref_c = rng.normal(size=(n_ref, 4)), rng.normal(size=(n_ref, 5))
    fp_ok = rng.random(n) > 0.1
    ref_ok = rng.random(n_ref) > 0.05
    flags = {"struct_valid": rng.random(n) > 0.2, "comp_valid": rng.random(n) > 0.3}
    flags["valid"] = flags["struct_valid"] & flags["comp_valid"] & fp_ok
    return flags, gen_s, gen_c, fp_ok, ref_s, ref_c, ref_ok


def _brute(idx, flags, gen_s, gen_c, fp_ok, ref_s, ref_c, ref_ok, cuts):
    """COV over the drawn multiset straight from the definition, with the harness's own coverage()."""
    drawn = np.unique([i for i in idx if fp_ok[i]])
    recall, _ = coverage(gen_s[drawn], gen_c[drawn], ref_s, ref_c, struct_cutoff=cuts[0], comp_cutoff=cuts[1],
                         ref_ok=ref_ok)
    hits = []
    for i in idx:
        if not fp_ok[i]:
            hits.append(False)
            continue
        ds = np.linalg.norm(ref_s[ref_ok] - gen_s[i], axis=1).min()
        dc = np.linalg.norm(ref_c[ref_ok] - gen_c[i], axis=1).min()
        hits.append(ds <= cuts[0] and dc <= cuts[1])
    out = {key: float(value[idx].mean()) for key, value in flags.items()}
    return out | {"cov_recall": recall, "cov_precision": float(np.mean(hits))}


@pytest.mark.parametrize("top_k", [64, 2])  # 2: most references fall back to the exact minimum
def test_resampled_metrics_equal_the_definition(monkeypatch, top_k):
    monkeypatch.setattr(sampling_spread, "TOP_K", top_k)
    data = _synthetic()
    cuts = (2.0, 2.6)  # chosen so that coverage is neither 0 nor 1
    resampler = sampling_spread.Resampler(*data, *cuts)
    n = len(data[3])
    full = resampler.metrics(np.arange(n))
    recall, precision = coverage(data[1][data[3]], data[2][data[3]], data[4], data[5], struct_cutoff=cuts[0],
                                 comp_cutoff=cuts[1], n_generated=n, ref_ok=data[6])
    assert full["cov_recall"] == pytest.approx(recall) and full["cov_precision"] == pytest.approx(precision)
    assert 0 < recall < 1 and 0 < precision < 1
    rng = np.random.default_rng(1)
    for _ in range(5):
        idx = rng.integers(0, n, size=n)
        assert resampler.metrics(idx) == pytest.approx(_brute(idx, *data, cuts))


def test_bootstrap_sd_is_seeded_and_near_the_binomial_one():
    data = _synthetic(n=400, n_ref=30)
    resampler = sampling_spread.Resampler(*data, 2.0, 2.6)
    first = resampler.bootstrap_sd(200, seed=3)
    assert first == resampler.bootstrap_sd(200, seed=3)
    p = data[0]["comp_valid"].mean()
    assert first["comp_valid"] == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=0.25)


def _write_chunk(path, n, errors=None):
    np.savez(path, struct=np.zeros((n, 2)), comp=np.ones((n, 3)),
             errors=np.array(json.dumps(errors or [None] * n)), seconds=np.zeros(n))


def test_saved_fingerprints_joins_chunks_in_offset_order_and_refuses_ambiguity(tmp_path):
    store = tmp_path / "fingerprints"
    store.mkdir()
    _write_chunk(store / "chunk-500-bbb.npz", 2, ["ValueError: x", None])
    _write_chunk(store / "chunk-0-aaa.npz", 500)
    struct, comp, ok = sampling_spread.saved_fingerprints(tmp_path, 502)
    assert struct.shape == (502, 2) and comp.shape == (502, 3)
    assert ok.sum() == 501 and not ok[500]
    with pytest.raises(SystemExit, match="record has 503"):
        sampling_spread.saved_fingerprints(tmp_path, 503)
    _write_chunk(store / "chunk-0-ccc.npz", 500)  # a stale chunk from another sample set at the same offset
    with pytest.raises(SystemExit, match="several chunks share an offset"):
        sampling_spread.saved_fingerprints(tmp_path, 502)
