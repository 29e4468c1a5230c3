"""Sample files: every format reads, every bad sample becomes an invalid slot with its reason."""

from __future__ import annotations

import gzip
import zipfile

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from harness.sample_formats import read_samples
from harness.samples import (
    SampleFileError,
    construction_problem,
    make_sample,
    structures_to_extxyz,
)
from tests.conftest import cscl, perovskite, rocksalt


@pytest.mark.parametrize(
    ("structure", "reason"),
    [
        (Structure(Lattice.cubic(3), [], []), "no atoms"),
        (Structure(Lattice.cubic(3), ["Na"], [[np.nan, 0, 0]]), "NaN"),
        (Structure(Lattice.cubic(0.3), ["Na"], [[0, 0, 0]]), "volume"),
        (Structure(Lattice.cubic(3), ["X0+"], [[0, 0, 0]]), "unknown element"),
        (Structure(Lattice.cubic(3), [{"Na": 0.5, "K": 0.5}], [[0, 0, 0]]), "partially occupied"),
    ],
)
def test_construction_problems_are_named(structure, reason):
    assert reason in construction_problem(structure)


def test_a_sound_crystal_and_an_absurd_one_both_construct():
    assert construction_problem(rocksalt()) is None
    assert construction_problem(rocksalt(a=1000.0)) is None  # judged by the metrics, not refused


def test_none_and_wrong_types_become_invalid_slots():
    assert make_sample(0, None).reason == "generator returned no structure"
    assert "not a pymatgen Structure" in make_sample(1, "Na Cl").reason


def _write_csv(path, texts):
    lines = ["cif"] + ['"' + t.replace('"', '""') + '"' for t in texts]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))


def test_csv_with_a_bad_row_keeps_going(tmp_path):
    path = tmp_path / "s.csv.gz"
    _write_csv(path, [str(CifWriter(rocksalt())), "garbage", str(CifWriter(perovskite()))])
    samples = read_samples(path)
    assert [s.structure is not None for s in samples] == [True, False, True]
    assert "row 3" in samples[1].reason  # CSV line 3 (header is line 1)


def test_csv_without_a_structure_column_is_a_clear_error(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("crystal,id\nx,1\n")
    with pytest.raises(SampleFileError, match="s.csv: no structure column .*cif, structure, LeMatStructs"):
        read_samples(path)


def test_extxyz_zip_folder_and_cdvae_pt_read_back(tmp_path):
    structures = [rocksalt(), perovskite()]
    from harness.evaluation_types import Sample

    (tmp_path / "s.extxyz").write_text(structures_to_extxyz([Sample(i, s) for i, s in enumerate(structures)]))
    folder = tmp_path / "cifs"
    folder.mkdir()
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as archive:
        for i, s in enumerate(structures):
            (folder / f"{i}.cif").write_text(str(CifWriter(s)))
            archive.writestr(f"{i}.cif", str(CifWriter(s)))
    torch.save({
        "frac_coords": torch.tensor(np.vstack([s.frac_coords for s in structures]))[None],
        "num_atoms": torch.tensor([len(s) for s in structures])[None],
        "atom_types": torch.tensor([site.specie.Z for s in structures for site in s])[None],
        "lengths": torch.tensor([s.lattice.abc for s in structures])[None],
        "angles": torch.tensor([s.lattice.angles for s in structures])[None],
    }, tmp_path / "s.pt")
    for name in ("s.extxyz", "s.zip", "cifs", "s.pt"):
        samples = read_samples(tmp_path / name)
        assert [s.structure.composition.reduced_formula for s in samples] == ["NaCl", "SrTiO3"], name


def test_unknown_format_and_missing_file_are_clear(tmp_path):
    (tmp_path / "s.unknown").write_text("hello\n")
    with pytest.raises(SampleFileError, match="s.unknown: unknown sample format"):
        read_samples(tmp_path / "s.unknown")
    with pytest.raises(SampleFileError, match="no such file"):
        read_samples(tmp_path / "absent.csv")


@pytest.mark.parametrize("name", ["samples.extxyz", "samples.extxyz.gz"])
def test_a_runs_samples_file_reads_back_in_sample_order_with_unconstructed_slots(tmp_path, name, monkeypatch):
    from harness.evaluation_types import Sample
    from harness.io import atomic_write_gzip
    from harness.samples import read_run_samples, structures_to_extxyz

    structures = [rocksalt(), None, cscl()]
    samples = [Sample(i, s, None if s is not None else "lattice length <= 0") for i, s in enumerate(structures)]
    path = tmp_path / name
    text = structures_to_extxyz(samples)
    if name.endswith(".gz"):
        atomic_write_gzip(path, text.encode())
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        import gzip

        def no_seek(*args, **kwargs):  # a seek in a gzip stream decompresses from the start: quadratic
            raise AssertionError("gzip stream seeked")

        monkeypatch.setattr(gzip.GzipFile, "seek", no_seek)
    else:
        path.write_text(text)
    back = read_run_samples(path, 4)
    assert [s.constructed for s in back] == [True, False, True, False]
    assert back[2].structure.composition == cscl().composition  # not shifted into the gap
