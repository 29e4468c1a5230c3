"""Fingerprints: shapes, the fixed scaler, NaN handling and invariances of the structure fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_fixtures import (
    CELL_TRANSFORMS,
    crystals,
    perovskite,
    rocksalt,
)

from harness.metrics.fingerprints import (
    N_COMP_FEATURES,
    N_STRUCT_FEATURES,
    composition_fingerprint,
    fingerprint_structures,
    magpie_scaler,
    scale_composition,
    structure_fingerprint,
)
from harness.parallel import SerialExecutor


def test_scaler_is_cdvae_package_data():
    means, stds, source = magpie_scaler()
    assert means.shape == stds.shape == (N_COMP_FEATURES,)
    assert "cdvae" in source and np.all(stds > 0)
    # first feature: MagpieData minimum Number; CDVAE's mean 21.19444...
    assert means[0] == pytest.approx(21.194441759304013)


def test_scaling_and_nan_to_zero():
    means, stds, _ = magpie_scaler()
    raw = means + 2 * stds
    raw[5] = np.nan
    scaled = scale_composition(raw)
    assert scaled[5] == 0.0 and np.allclose(np.delete(scaled, 5), 2.0)


def test_noble_gas_features_stay_nan_until_scaled():
    raw = composition_fingerprint("HeO")  # no imputation (matminer >= 0.9 would impute by default)
    assert np.isnan(raw).any() and not np.isnan(scale_composition(raw)).any()


def test_fingerprints_of_known_crystals():
    fp = structure_fingerprint(rocksalt())
    assert fp.shape == (N_STRUCT_FEATURES,)
    # every site of rock salt is octahedral: the CN=6 octahedral order parameter is 1
    assert fp.max() == pytest.approx(1.0, abs=1e-6)
    assert not np.allclose(fp, structure_fingerprint(perovskite()))


def test_fingerprint_structures_records_missing_and_failed():
    fps = fingerprint_structures(
        [rocksalt(), None, "not a structure"], executor=SerialExecutor(progress=False)
    )
    assert fps.ok.tolist() == [True, False, False]
    assert fps.errors[1] == "not constructed" and fps.errors[2].startswith("AttributeError")
    assert np.isnan(fps.struct[1]).all() and np.isnan(fps.comp[2]).all()
    assert np.isfinite(fps.comp[0]).all()


TRANSFORMS = {k: v for k, v in CELL_TRANSFORMS.items() if k != "other cell"}


@settings(max_examples=12, deadline=None, derandomize=True)
@given(crystals(max_atoms=3), st.integers(0, 1000), st.sampled_from(sorted(TRANSFORMS)))
def test_fingerprint_invariances(structure, seed, name):
    other = TRANSFORMS[name](structure, seed)
    assert np.allclose(structure_fingerprint(other), structure_fingerprint(structure), atol=1e-6)
    assert np.allclose(composition_fingerprint(other), composition_fingerprint(structure), equal_nan=True)


def test_resumable_fingerprints_reuse_saved_chunks_and_redo_changed_ones(tmp_path, monkeypatch):
    from harness.metrics import fingerprints as fp_module

    structures = [rocksalt(), perovskite(), None, rocksalt(a=5.9)]
    whole = fingerprint_structures(structures)
    first = fp_module.fingerprint_structures_resumable(structures, tmp_path, chunk=2)
    assert np.array_equal(first.struct, whole.struct, equal_nan=True) and first.errors == whole.errors
    assert len(list(tmp_path.glob("chunk-*.npz"))) == 2

    computed = []
    real = fp_module.fingerprint_structures
    monkeypatch.setattr(fp_module, "fingerprint_structures", lambda s, **k: computed.append(len(s)) or real(s, **k))
    again = fp_module.fingerprint_structures_resumable(structures, tmp_path, chunk=2)
    assert computed == [] and np.array_equal(again.comp, whole.comp, equal_nan=True)
    assert again.errors == whole.errors == (None, None, "not constructed", None)
    changed = structures[:3] + [rocksalt(a=6.1)]  # only the second chunk differs
    fp_module.fingerprint_structures_resumable(changed, tmp_path, chunk=2)
    assert computed == [2]


def test_a_runs_own_samples_file_read_back_can_be_fingerprinted(tmp_path):
    """ASE reads an extxyz frame's sample_index back as a numpy integer into the structure's properties; the chunk
    key of the resumable fingerprints must still serialise it (bench evaluate on a run's samples file crashed)."""
    from harness.metrics.fingerprints import _chunk_key
    from harness.sample_formats import read_samples
    from harness.samples import make_sample, structures_to_extxyz

    path = tmp_path / "samples.extxyz"
    path.write_text(structures_to_extxyz([make_sample(0, rocksalt()), make_sample(1, perovskite())]))
    structures = [sample.structure for sample in read_samples(path)]
    assert any(isinstance(v, np.integer) for s in structures for v in s.properties.values())
    key = _chunk_key(structures)
    assert len(key) == 20 and key == _chunk_key([s.copy() for s in structures])
    assert key != _chunk_key(structures[:1])
