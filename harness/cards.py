"""Dataset cards and loaded splits: what a dataset is (its files, their hashes, where upstream keeps them, its
coverage cutoffs), the built-in CDVAE cards, and one loaded split. No file is read here: the registry lists these
cards and ``harness.datasets`` loads what they describe."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.protocol import COV_CUTOFFS

CDVAE_RAW = "https://raw.githubusercontent.com/txie-93/cdvae/main/data"


@dataclass(frozen=True)
class SplitFile:
    """One CSV(.gz) of a split, with the hash that verifies it (empty when unknown) and where upstream keeps it."""

    filename: str
    sha256: str = ""
    rows: int | None = None
    url: str = ""


@dataclass(frozen=True)
class DatasetCard:
    """A dataset: its name, folder under the data directory, split files and provenance."""

    name: str
    folder: str
    files: dict[str, SplitFile]
    description: str = ""
    source: str = ""
    # Coverage cutoffs (structure, composition); the built-in datasets use the protocol's fixed values.
    cov_cutoffs: tuple[float, float] | None = None


@dataclass
class Split:
    """One loaded split (or a union of splits): structures in file order with their ids and the files' hashes."""

    dataset: str
    name: str  # e.g. "test", or "val+train_partial"
    structures: list = field(repr=False)  # list[pymatgen Structure]
    material_ids: list[str] = field(repr=False)
    sha256: str  # of the file; for a union, the sorted hashes joined by "+"
    files: list[str] = field(default_factory=list)
    part_sizes: list[int] = field(default_factory=list)  # structures per joined split, in name order

    def __len__(self) -> int:
        return len(self.structures)


def _card(name, folder, upstream, description, rows_hashes):
    files = {}
    for split, (filename, sha, rows) in rows_hashes.items():
        url = f"{CDVAE_RAW}/{upstream}/{split}.csv" if split in ("train", "val", "test") else ""
        files[split] = SplitFile(filename, sha, rows, url)
    return DatasetCard(name, folder, files, description, f"txie-93/cdvae data/{upstream}", COV_CUTOFFS[name])


BUILTIN_CARDS = {
    "perov5": _card(
        "perov5",
        "perov5",
        "perov_5",
        "Perov-5: 18,928 cubic perovskites, 5 atoms per cell (CDVAE splits).",
        {
            "train": ("train.csv.gz", "9f7442f3f108e0bd11ec72ac914ad6b7368e4ba87e424b24c1709e5b1b0e0bd6", 11356),
            "val": ("val.csv.gz", "784e89dc6b8879382b2b25cf3cc0c75a3c1160f8242b2090006931a24a0f5c45", 3787),
            "test": ("test.csv.gz", "b635a7e4803ce8abc147da102a5ac5df1a2c9fc74fc4854afb7eac54c839420c", 3785),
        },
    ),
    "carbon24": _card(
        "carbon24",
        "carbon24",
        "carbon_24",
        "Carbon-24: 10,153 carbon allotropes, 6-24 atoms per cell (CDVAE splits).",
        {
            "train": ("train.csv.gz", "", 6091),
            "val": ("val.csv.gz", "bf1d3e91bbd70e0c84b3be67c19ddcc796331b797a08a9e275691a3b7a564dec", 2032),
            "test": ("test.csv.gz", "f51a69674f1d15fb06fa8be60f09abbda60283f77fd1a21d44d6ec2c9a039f65", 2030),
        },
    ),
    "mp20": _card(
        "mp20",
        "mp20",
        "mp_20",
        "MP-20: 45,229 Materials Project structures with at most 20 atoms (CDVAE splits).",
        {
            "train": ("train.csv.gz", "", 27136),
            "val": ("val.csv.gz", "a8a905e106a297e016b50320af8e24399fa9a1866fd10e49e9ec392abcb2661f", 9047),
            "test": ("test.csv.gz", "8dbb585bd2c2404ca061572599d0cf579903ffe5e10573e39e26c1d4c97248b6", 9046),
            "train_partial": (
                "train_partial_first1000.csv.gz",
                "b1a5f38a9515301804dafe2acfebd8a2cbf374845942645af21b40ae09c0e260",
                1000,
            ),
            # 4,590 of the 27,136 training rows, recovered from public datasets that hold the same MP materials
            # (datasets/SOURCES.md); contains train_partial's 1,000 rows unchanged.
            "train_recovered": (
                "train_recovered.csv.gz",
                "cabe4dd9599ab43d5ad67e1d118762b510ff7a3bedfa1e3954fb791fb6b6753b",
                4590,
            ),
        },
    ),
}
