"""Shared fixtures: tiny structures built in code and a tiny dataset registered through the dataset hook."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from harness.datasets import DatasetCard, SplitFile
from harness.hookspecs import hookimpl
from harness.registry import build_registry, set_registry


def rocksalt(a: float = 5.64, cation: str = "Na", anion: str = "Cl") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perovskite(a: float = 3.905, a_site: str = "Sr", b_site: str = "Ti") -> Structure:
    return Structure(Lattice.cubic(a), [a_site, b_site, "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def cscl(a: float = 4.12) -> Structure:
    return Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def diamond(a: float = 5.43, element: str = "Si") -> Structure:
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(a), [element], [[0, 0, 0]])


def fcc(a: float = 3.61, element: str = "Cu") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [element], [[0, 0, 0]])


def protocol_relaxer_predictions(structures, **attributes) -> list:
    """CHGNet's energies, forces and stresses (task ``efs``) for ``structures``, with the protocol relaxer's
    ``attributes`` set for the call (e.g. ``flush_denormals=False``) and restored after."""
    from harness.stability.relax import load_relaxer

    relaxer = load_relaxer()
    saved = {name: getattr(relaxer, name) for name in attributes}
    try:
        for name, value in attributes.items():
            setattr(relaxer, name, value)
        return relaxer.predict(structures, "efs", batch_size=8)
    finally:
        for name, value in saved.items():
            setattr(relaxer, name, value)


def tiny_structures() -> list[Structure]:
    return [rocksalt(), perovskite(), cscl(), diamond(), fcc(), rocksalt(4.2, "Mg", "O"),
            perovskite(3.99, "Ba", "Ti"), fcc(4.08, "Au")]


def write_cif_csv(path, structures, ids=None) -> None:
    rows = {"material_id": ids or [f"tiny-{i}" for i in range(len(structures))],
            "cif": [str(CifWriter(s)) for s in structures]}
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buffer.getvalue().encode()))


TINY_CARD = DatasetCard(
    name="tiny",
    folder="tiny",
    files={s: SplitFile(f"{s}.csv.gz") for s in ("train", "val", "test")},
    description="eight textbook crystals, for tests",
    cov_cutoffs=(0.2, 4.0),
)


class TinyDatasetPlugin:
    @hookimpl
    def xtalbench_register_datasets(self, register):
        register(TINY_CARD)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Fresh data and cache dirs, and a fresh registry, for one test."""
    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XTALBENCH_DATA", str(tmp_path / "data"))
    set_registry(None)
    yield tmp_path
    set_registry(None)


@pytest.fixture
def tiny_dataset(isolated):
    """A registered dataset 'tiny' whose three splits hold the eight tiny structures (train holds them twice)."""
    structures = tiny_structures()
    data = isolated / "data" / "tiny"
    write_cif_csv(data / "train.csv.gz", structures + structures)
    write_cif_csv(data / "val.csv.gz", structures[:4])
    write_cif_csv(data / "test.csv.gz", structures)
    set_registry(build_registry(extra_plugins=[TinyDatasetPlugin()]))
    return data


def toy_structures() -> list[Structure]:
    """A dozen small crystals in three space groups (225, 221, 186), built in code: a training set for the
    asymmetric-unit generators' tests."""
    out = []
    for i, (a, b) in enumerate([("Na", "Cl"), ("K", "Br"), ("Mg", "O"), ("Ca", "S")]):
        out.append(Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.5 + 0.3 * i), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]]))
        out.append(Structure(Lattice.cubic(3.8 + 0.1 * i), [a, "Ti", "O", "O", "O"],
                             [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]))
        out.append(Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.2 + 0.1 * i, 5.2), [a, b],
                                             [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.38]]))
    return out


def write_labelled_toy_mp20(data_dir: Path, first: float, step: float, *, test_labelled: bool) -> None:
    """``toy_structures`` as MP-20's val and test splits under ``data_dir/mp20``, labelled with made-up formation
    energies ``first + step * i`` (the test split unlabelled unless ``test_labelled``): the property tasks' toy data."""
    structures = toy_structures()
    (data_dir / "mp20").mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"material_id": [f"toy-{i}" for i in range(len(structures))],
                          "cif": [str(CifWriter(s)) for s in structures],
                          "formation_energy_per_atom": [first + step * i for i in range(len(structures))]})
    frame.to_csv(data_dir / "mp20" / "val.csv", index=False)
    test = frame if test_labelled else frame.drop(columns="formation_energy_per_atom")
    test.to_csv(data_dir / "mp20" / "test.csv", index=False)


@pytest.fixture(scope="module")
def toy_split():
    """``toy_structures`` as a harness ``Split`` named toy/train."""
    from harness.datasets import Split

    structures = toy_structures()
    toy_sha256 = "7" * 64  # of a sha256's form, as the checkpoint manifest schema checks
    return Split("toy", "train", structures, [f"toy-{i}" for i in range(len(structures))], toy_sha256)
