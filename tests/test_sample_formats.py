"""Every sample format reads back what its own writer wrote; a bad entry is an invalid sample named by its position
while the entries around it are kept; a file that cannot be read at all is a SampleFileError naming it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import sqlite3
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.db import connect
from ase.io import write
from monty.serialization import dumpfn
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter
from pymatgen.io.vasp import Poscar

from harness.sample_formats import FORMATS, read_sample_file, read_samples
from harness.samples import SampleFileError
from tests.conftest import TINY_CARD, perovskite, rocksalt

MOLECULE = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])  # no cell: an entry that cannot be a crystal


def triclinic() -> Structure:
    coords = np.random.default_rng(0).uniform(0.05, 0.95, (4, 3))
    return Structure(Lattice.from_parameters(4.1, 5.2, 6.3, 81, 97, 105), ["Li", "Fe", "O", "O"], coords)


WRITTEN = [triclinic(), rocksalt(), perovskite()]


def assert_same(read: Structure, written: Structure) -> None:
    """Equal lattice (lengths, angles), species in order, and fractional coordinates modulo 1, to 1e-6."""
    np.testing.assert_allclose(read.lattice.abc, written.lattice.abc, atol=1e-6)
    np.testing.assert_allclose(read.lattice.angles, written.lattice.angles, atol=1e-6)
    assert [site.species_string for site in read] == [site.species_string for site in written]
    delta = read.frac_coords - written.frac_coords
    np.testing.assert_allclose(delta - np.round(delta), 0, atol=1e-6)


def assert_kept_around(samples, bad: int, where: str, reason: str, written=WRITTEN) -> None:
    """Sample ``bad`` is invalid with ``where`` and ``reason`` in its reason; the others read back as written."""
    assert len(samples) == len(written) + 1
    assert [s.index for s in samples] == list(range(len(samples)))
    assert samples[bad].structure is None
    assert samples[bad].reason.startswith(where + ": "), samples[bad].reason
    assert reason in samples[bad].reason
    for sample, structure in zip([s for i, s in enumerate(samples) if i != bad], written):
        assert_same(sample.structure, structure)


def atoms(structures=WRITTEN) -> list[Atoms]:
    return [AseAtomsAdaptor.get_atoms(s) for s in structures]


def extxyz_text() -> str:
    buffer = io.StringIO()
    write(buffer, atoms(), format="extxyz")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["s.extxyz", "s.xyz.gz"])
def test_extxyz_reads_back(tmp_path, name):
    path = tmp_path / name
    text = extxyz_text().encode()
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    read = read_sample_file(path)
    assert read.format == ("extxyz+gzip" if name.endswith(".gz") else "extxyz")
    for sample, structure in zip(read.samples, WRITTEN, strict=True):
        assert_same(sample.structure, structure)


def _with_frames(frames: list[list[str]], bad: list[str]) -> str:
    return "\n".join(frames[0] + bad + frames[1] + frames[2]) + "\n"


def _frames(text: str) -> list[list[str]]:
    lines, frames = text.splitlines(), []
    while lines:
        n = int(lines[0])
        frames.append(lines[: n + 2])
        lines = lines[n + 2:]
    return frames


@pytest.mark.parametrize("damage", ["bad number", "atom line missing"])
def test_extxyz_broken_frame_is_invalid_and_the_frames_after_it_stay_aligned(tmp_path, damage):
    frames = _frames(extxyz_text())
    bad = [str(len(MOLECULE)), frames[1][1]] + ["H 0.0 0.0 0.0", "H 0.0 0.0 zero"]
    if damage == "atom line missing":
        bad = bad[:-1]
    (tmp_path / "s.extxyz").write_text(_with_frames(frames, bad))
    samples = read_samples(tmp_path / "s.extxyz")
    line = len(frames[0]) + 1
    assert_kept_around(samples, 1, f"s.extxyz frame 1 (line {line})", "")


def test_cif_one_sample_per_block_and_a_broken_block_named(tmp_path):
    blocks = [str(CifWriter(s)) for s in WRITTEN]
    # a ';' text field whose lines look like a new block must not split the first block
    first = blocks[0].rstrip("\n") + "\n_publ_section_comment\n;\ndata_not_a_block, just text\n;\n"
    (tmp_path / "s.cif").write_text(first + "data_broken\n_cell_length_a 5.0\n" + blocks[1] + blocks[2])
    read = read_sample_file(tmp_path / "s.cif")
    assert read.format == "cif"
    assert_kept_around(read.samples, 1, "s.cif block 1 (data_broken)", "does not parse as CIF")


def test_folder_of_poscars_contcars_and_cifs_with_a_broken_poscar(tmp_path):
    folder = tmp_path / "vasp"
    (folder / "run1").mkdir(parents=True)
    (folder / "CONTCAR").write_text(Poscar(WRITTEN[0]).get_str())
    (folder / "POSCAR_1").write_text("this is not a POSCAR\n1.0\n")
    (folder / "run1" / "POSCAR").write_text(Poscar(WRITTEN[1]).get_str())
    (folder / "x.vasp").write_text(Poscar(WRITTEN[2]).get_str())
    (folder / "README.md").write_text("how these were made\n")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "run1" / "XDATCAR").write_text(Poscar(WRITTEN[1]).get_str())  # begins like a POSCAR; VASP's output
    read = read_sample_file(folder)
    assert read.format == "folder" and read.members == {"poscar": 4, "unread": 3}
    assert_kept_around(read.samples, 1, "vasp/POSCAR_1", "does not parse as POSCAR")

    (folder / "b.cif").write_text(str(CifWriter(WRITTEN[0])))
    mixed = read_sample_file(folder)
    assert mixed.members == {"poscar": 4, "cif": 1, "unread": 3}
    assert_same(mixed.samples[2].structure, WRITTEN[0])  # name order: CONTCAR, POSCAR_1, b.cif, run1/POSCAR, x.vasp


@pytest.mark.parametrize("shape", ["list", "dict", "list.gz"])
def test_pymatgen_json_list_or_dict_with_entries_that_are_not_structures(tmp_path, shape):
    entries = [WRITTEN[0], {"@class": "Molecule", "sites": []}, WRITTEN[1], WRITTEN[2]]
    name = "s.json.gz" if shape.endswith(".gz") else "s.json"
    if shape == "dict":
        dumpfn({f"gen-{i}": e for i, e in enumerate(entries)}, tmp_path / name)
        where = "s.json entry 'gen-1'"
    else:
        dumpfn(entries, tmp_path / name)  # monty's own writer; gzips by the name
        where = f"{name} entry 1"
    read = read_sample_file(tmp_path / name)
    assert read.format == "pymatgen-json" + ("+gzip" if name.endswith(".gz") else "")
    assert_kept_around(read.samples, 1, where, "not a pymatgen Structure dict (Molecule)")


def test_json_of_one_structure_or_of_computed_structure_entries(tmp_path):
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    dumpfn(WRITTEN[0], tmp_path / "one.json")
    (one,) = read_samples(tmp_path / "one.json")
    assert_same(one.structure, WRITTEN[0])
    dumpfn([ComputedStructureEntry(s, -1.0) for s in WRITTEN] + [7], tmp_path / "entries.json")
    samples = read_samples(tmp_path / "entries.json")
    assert samples[3].reason == "entries.json entry 3: not a structure but a JSON int"
    for sample, structure in zip(samples, WRITTEN):
        assert_same(sample.structure, structure)


@pytest.mark.parametrize(("column", "cell"), [("structure", "json"), ("LeMatStructs", "json"), ("cif_string", "cif")])
def test_csv_with_a_lemat_genbench_structure_column_and_a_bad_row(tmp_path, column, cell):
    cells = [json.dumps(s.as_dict()) if cell == "json" else str(CifWriter(s)) for s in WRITTEN]
    cells.insert(1, '{"lattice": "no"')
    pd.DataFrame({"id": range(4), column: cells}).to_csv(tmp_path / "s.csv", index=False)
    assert_kept_around(read_samples(tmp_path / "s.csv"), 1, "s.csv row 3", "")


def test_ase_trajectory_with_a_frame_that_is_no_crystal(tmp_path):
    write(tmp_path / "s.traj", [atoms()[0], MOLECULE, *atoms()[1:]])
    read = read_sample_file(tmp_path / "s.traj")
    assert read.format == "ase-traj"
    assert_kept_around(read.samples, 1, "s.traj frame 1", "no periodic cell")


def test_ase_database_with_a_row_that_is_no_crystal_and_is_left_unchanged(tmp_path):
    with connect(tmp_path / "s.db") as db:
        for entry in [atoms()[0], MOLECULE, *atoms()[1:]]:
            db.write(entry)
    before = (tmp_path / "s.db").read_bytes()
    read = read_sample_file(tmp_path / "s.db")
    assert read.format == "ase-db"
    assert_kept_around(read.samples, 1, "s.db row id=2", "no periodic cell")
    assert (tmp_path / "s.db").read_bytes() == before


def test_zip_of_mixed_formats_with_a_broken_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as archive:
        archive.writestr("gen/0.cif", str(CifWriter(WRITTEN[0])))
        archive.writestr("gen/1.cif", "data_x\n_cell_length_a 1\n")
        archive.writestr("gen/2/POSCAR", Poscar(WRITTEN[1]).get_str())
        archive.writestr("gen/3.extxyz.gz", gzip.compress(extxyz_text().encode()))
        archive.writestr("__MACOSX/gen/._0.cif", b"\0\5")
        archive.writestr("gen/notes.txt", "sampled at T=1\n")
    read = read_sample_file(tmp_path / "s.zip")
    assert read.format == "zip" and read.members == {"cif": 2, "poscar": 1, "extxyz": 1, "unread": 1}
    written = [WRITTEN[0], WRITTEN[1], *WRITTEN]
    assert_kept_around(read.samples, 1, "s.zip/gen/1.cif", "does not parse as CIF", written)


def test_cdvae_pt_with_a_degenerate_lattice(tmp_path):
    lengths = [s.lattice.abc for s in WRITTEN]
    lengths.insert(1, (0.0, 0.0, 0.0))
    structures = [WRITTEN[0], rocksalt(), *WRITTEN[1:]]
    torch.save({
        "frac_coords": torch.tensor(np.vstack([s.frac_coords for s in structures]))[None],
        "num_atoms": torch.tensor([len(s) for s in structures])[None],
        "atom_types": torch.tensor([site.specie.Z for s in structures for site in s])[None],
        "lengths": torch.tensor(lengths)[None],
        "angles": torch.tensor([s.lattice.angles for s in structures])[None],
    }, tmp_path / "eval_gen.pt")
    assert_kept_around(read_samples(tmp_path / "eval_gen.pt"), 1, "eval_gen.pt entry 1", "lattice length <= 0")


def _example(tmp_path, fmt: str):
    """A file in ``fmt`` holding WRITTEN, named with its usual extension."""
    path = tmp_path / {"extxyz": "s.extxyz", "cif": "s.cif", "poscar": "s.vasp", "pymatgen-json": "s.json",
                       "csv": "s.csv", "ase-traj": "s.traj", "ase-db": "s.db", "zip": "s.zip"}[fmt]
    if fmt == "extxyz":
        path.write_text(extxyz_text())
    elif fmt == "cif":
        path.write_text("".join(str(CifWriter(s)) for s in WRITTEN))
    elif fmt == "poscar":
        path.write_text(Poscar(WRITTEN[0]).get_str())
    elif fmt == "pymatgen-json":
        dumpfn(WRITTEN, path)
    elif fmt == "csv":
        pd.DataFrame({"material_id": range(3), "cif": [str(CifWriter(s)) for s in WRITTEN]}).to_csv(path)
    elif fmt == "ase-traj":
        write(path, atoms())
    elif fmt == "ase-db":
        with connect(path) as db:
            for entry in atoms():
                db.write(entry)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            for i, s in enumerate(WRITTEN):
                archive.writestr(f"{i}.cif", str(CifWriter(s)))
    return path


@pytest.mark.parametrize("fmt", ["extxyz", "cif", "poscar", "pymatgen-json", "csv", "ase-traj", "ase-db", "zip"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_a_format_is_known_by_its_content_when_the_name_says_nothing(tmp_path, fmt, gzipped):
    named = _example(tmp_path, fmt)
    anonymous = tmp_path / ("samples.gz" if gzipped else "samples")
    anonymous.write_bytes(gzip.compress(named.read_bytes()) if gzipped else named.read_bytes())
    read = read_sample_file(anonymous)
    assert read.format == fmt + ("+gzip" if gzipped else "")
    written = WRITTEN[:1] if fmt == "poscar" else WRITTEN
    for sample, structure in zip(read.samples, written, strict=True):
        assert_same(sample.structure, structure)


def test_other_formats_go_to_ase_then_pymatgen(tmp_path):
    from pymatgen.io.cssr import Cssr

    write(tmp_path / "s.xsf", atoms()[0])
    Cssr(WRITTEN[0]).write_file(str(tmp_path / "s.cssr"))  # a format only pymatgen reads
    xsf, cssr = read_sample_file(tmp_path / "s.xsf"), read_sample_file(tmp_path / "s.cssr")
    assert xsf.format == "ase:xsf" and cssr.format == "pymatgen"
    assert_same(xsf.samples[0].structure, WRITTEN[0])
    assert cssr.samples[0].structure.composition == WRITTEN[0].composition  # CSSR keeps 4 decimals


def _not_ase_db(path):
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x)")


@pytest.mark.parametrize(("name", "make", "match"), [
    ("s.json", lambda p: p.write_text('[{"lattice": '), "s.json: not JSON"),
    ("s.json", lambda p: p.write_text('"a string"'), "s.json: JSON holds a str"),
    ("s.cif.gz", lambda p: p.write_bytes(gzip.compress(b"data_x\n")[:-6]), "s.cif.gz: not a readable gzip file"),
    ("s.traj", lambda p: p.write_bytes(b"- of Ulm garbage"), "s.traj: cannot read as an ASE trajectory"),
    ("s.db", _not_ase_db, "s.db: an SQLite file but not an ASE database"),
    ("s.db", lambda p: p.write_text("no sql here"), "s.db: not an SQLite database"),
    ("s.zip", lambda p: zipfile.ZipFile(p, "w").writestr("notes.txt", "x"), "s.zip: holds no files in a sample format"),
    ("s.xyz", lambda p: p.write_text("no counts\nat all\n"), "s.xyz: cannot read as extxyz"),
    ("s.cif", lambda p: p.write_text("# only a comment\n"), "s.cif: holds no CIF data block"),
    ("s.json", lambda p: p.write_text("[]"), "s.json: holds no samples"),
    ("s.bin", lambda p: p.write_bytes(b"\0\1\2 nothing"), "s.bin: unknown sample format"),
    ("empty", lambda p: p.mkdir(), "empty: holds no files in a sample format"),
])
def test_a_file_that_cannot_be_read_at_all_is_a_clear_error(tmp_path, name, make, match):
    make(tmp_path / name)
    with pytest.raises(SampleFileError, match=match):
        read_samples(tmp_path / name)
    if name == "s.db" and "not an ASE" in match:
        with sqlite3.connect(tmp_path / name) as connection:  # ASE's connect() would have added its tables
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert tables == ["t"]


def test_equal_reasons_at_different_positions_count_together(tmp_path):
    from harness.recording import reason_counts

    cells = ["garbage", str(CifWriter(WRITTEN[0])), "garbage"]
    pd.DataFrame({"cif": cells}).to_csv(tmp_path / "s.csv", index=False)
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(2):
        (folder / f"POSCAR_{i}").write_text("broken\n1.0\n")
    counts = reason_counts(read_samples(tmp_path / "s.csv") + read_samples(folder))
    assert len(counts) == 2 and sorted(counts.values()) == [2, 2]
    assert not any("row" in key or "POSCAR_" in key for key in counts), counts


def test_the_record_names_the_format_and_hashes_what_was_read(tmp_path, monkeypatch):
    from harness import evaluate_file
    from harness.evaluation import EvaluationRequest

    calls = []
    monkeypatch.setattr(evaluate_file, "record_run", lambda samples, run_dir, request, card, origin, invocation:
                        calls.append(origin))
    folder = tmp_path / "gen"
    folder.mkdir()
    for i, s in enumerate(WRITTEN):
        (folder / f"{i}.cif").write_text(str(CifWriter(s)))
    old_digest = hashlib.sha256()  # how a folder of CIFs was hashed before other formats were read
    for file in sorted(folder.glob("*.cif")):
        old_digest.update(file.name.encode() + file.read_bytes())
    (folder / "README.md").write_text("not a sample\n")
    request = EvaluationRequest(dataset="tiny")
    evaluate_file.evaluate_file(folder, request, TINY_CARD, out=tmp_path / "run0")
    assert calls[-1].samples_sha256 == old_digest.hexdigest()
    assert calls[-1].sampling["source_format"] == "folder"
    assert calls[-1].sampling["source_members"] == {"cif": 3, "unread": 1}
    (folder / "CONTCAR").write_text(Poscar(WRITTEN[0]).get_str())
    evaluate_file.evaluate_file(folder, request, TINY_CARD, out=tmp_path / "run1")
    assert calls[-1].samples_sha256 != old_digest.hexdigest()

    path = shutil.copy(_example(tmp_path, "ase-traj"), tmp_path / "mattergen.traj")
    evaluate_file.evaluate_file(path, request, TINY_CARD, out=tmp_path / "run2")
    assert calls[-1].sampling["source_format"] == "ase-traj"
    assert calls[-1].samples_sha256 == hashlib.sha256((tmp_path / "mattergen.traj").read_bytes()).hexdigest()
    assert "source_members" not in calls[-1].sampling


def test_bench_evaluate_help_lists_every_format(capsys):
    from harness.cli.main import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in FORMATS)
    assert "LeMatStructs" in out and "ASE" in out
