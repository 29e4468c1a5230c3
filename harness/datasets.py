"""The CDVAE benchmark datasets: cards, verified files, cached parsed structures, training-split resolution."""

from __future__ import annotations

import pickle
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import paths
from harness.io import atomic_write, sha256_file
from harness.protocol import COV_CUTOFFS

CDVAE_RAW = "https://raw.githubusercontent.com/txie-93/cdvae/main/data"


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupt or malformed; the message says which and what to do."""


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


def split_path(card: DatasetCard, split: str, data_dir: Path) -> Path | None:
    """The file holding ``split`` under ``data_dir``: the ``.csv.gz`` of the card, or a plain ``.csv`` beside it."""
    spec = card.files[split]
    gz = data_dir / card.folder / spec.filename
    if gz.exists():
        return gz
    plain = gz.with_name(spec.filename.removesuffix(".gz"))
    return plain if plain.exists() else None


@dataclass(frozen=True)
class SplitStatus:
    split: str
    path: Path | None
    state: str  # "verified", "unverified", "hash mismatch", "missing"
    sha256: str = ""
    expected_rows: int | None = None


def split_status(card: DatasetCard, split: str, data_dir: Path) -> SplitStatus:
    spec = card.files[split]
    path = split_path(card, split, data_dir)
    if path is None:
        return SplitStatus(split, None, "missing", "", spec.rows)
    digest = _cached_sha256(path)
    if not spec.sha256 or path.suffix != ".gz":
        state = "unverified"
    else:
        state = "verified" if digest == spec.sha256 else "hash mismatch"
    return SplitStatus(split, path, state, digest, spec.rows)


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def missing_message(card: DatasetCard, splits: Sequence[str], data_dir: Path) -> str:
    lines = [f"dataset {card.name!r}: missing split file(s) under {data_dir / card.folder}:"]
    for split in splits:
        spec = card.files[split]
        where = f" (upstream: {spec.url})" if spec.url else ""
        lines.append(f"  - {split}: put {spec.filename} there{where}")
    lines.append(
        f"Set --data-dir or ${paths.DATA_ENV} to the folder that holds {card.folder}/, "
        "or connect to the network and the files are downloaded on first use."
    )
    present = [s for s in card.files if split_path(card, s, data_dir) is not None]
    if present:
        lines.append(f"Present splits: {', '.join(present)} (e.g. --train-split {'+'.join(p for p in present if p != 'test')}).")
    return "\n".join(lines)


def _download(card: DatasetCard, split: str, data_dir: Path) -> Path | None:
    """Fetch a split from the CDVAE repository; ``None`` when there is no network or no upstream URL."""
    spec = card.files[split]
    if not spec.url:
        return None
    target = data_dir / card.folder / spec.filename.removesuffix(".gz")
    try:
        with urllib.request.urlopen(spec.url, timeout=20) as response:
            payload = response.read()
    except (urllib.error.URLError, TimeoutError, OSError):
        return None
    atomic_write(target, lambda p: p.write_bytes(payload))
    return target


def ensure_split_file(card: DatasetCard, split: str, data_dir: Path, download: bool = True) -> Path:
    if split not in card.files:
        raise DatasetError(f"dataset {card.name!r} has no split {split!r}; it has: {', '.join(card.files)}")
    path = split_path(card, split, data_dir)
    if path is None and download:
        path = _download(card, split, data_dir)
    if path is None:
        raise DatasetError(missing_message(card, [split], data_dir))
    status = split_status(card, split, data_dir)
    if status.state == "hash mismatch":
        raise DatasetError(
            f"{path}: sha256 {status.sha256} does not match the dataset card ({card.files[split].sha256}); "
            "the file is corrupt or a different version. Replace it with the original."
        )
    return path


def read_cif_csv(path: Path, column: str = "cif") -> tuple[list[str], list[str]]:
    """The ``cif`` texts and material ids of a CSV(.gz); a clear error names the file when the column is absent."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for a broken file
        raise DatasetError(f"{path}: cannot read as CSV: {exc}") from exc
    if column not in frame.columns:
        raise DatasetError(f"{path}: no {column!r} column (columns: {', '.join(map(str, frame.columns))})")
    ids = frame["material_id"].tolist() if "material_id" in frame.columns else [str(i) for i in range(len(frame))]
    return frame[column].tolist(), ids


def parse_cif(text: str):
    """Parse one CIF into a pymatgen Structure (warnings silenced); raises on failure."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt="cif")


def _parse_reference_rows(path: Path, texts: list[str]) -> list:
    from tqdm.auto import tqdm

    structures = []
    for row, text in enumerate(tqdm(texts, desc=f"parsing {path.name}", unit="cif", leave=False, mininterval=1)):
        try:
            structures.append(parse_cif(text))
        except Exception as exc:
            # A reference split must be whole: a bad row there would silently change every metric.
            raise DatasetError(f"{path}: row {row + 2} (CSV line): CIF does not parse: {exc}") from exc
    return structures


def load_split_file(path: Path, dataset: str, split: str, digest: str | None = None) -> Split:
    """Parse a split file once; later calls read the parsed structures from a cache keyed by the file's sha256."""
    digest = digest or _cached_sha256(path)
    cache = paths.cache_dir("structures") / f"{digest}.pkl"
    if cache.exists():
        try:
            with open(cache, "rb") as handle:
                ids, structures = pickle.load(handle)
            return Split(dataset, split, structures, ids, digest, [str(path)])
        except Exception:
            cache.unlink(missing_ok=True)  # a torn cache file is rebuilt, never trusted
    texts, ids = read_cif_csv(path)
    structures = _parse_reference_rows(path, texts)
    atomic_write(cache, lambda p: p.write_bytes(pickle.dumps((ids, structures), protocol=pickle.HIGHEST_PROTOCOL)))
    return Split(dataset, split, structures, ids, digest, [str(path)])


def get_card(name: str) -> DatasetCard:
    from harness.registry import get_registry

    return get_registry().dataset(name)


def load_split(dataset: str, split: str, data_dir: str | Path | None = None, download: bool = True) -> Split:
    """Load ``split`` of ``dataset``; ``split`` may join several with ``+`` (``val+train_partial``)."""
    card = get_card(dataset)
    root = paths.data_dir(data_dir)
    parts = [s for s in split.split("+") if s]
    if not parts:
        raise DatasetError(f"empty split name {split!r}")
    unknown = [s for s in parts if s not in card.files]
    if unknown:
        raise DatasetError(f"dataset {dataset!r} has no split(s) {', '.join(unknown)}; it has: {', '.join(card.files)}")
    missing = [s for s in parts if split_path(card, s, root) is None and not (download and _download(card, s, root))]
    if missing:
        raise DatasetError(missing_message(card, missing, root))
    loaded = [load_split_file(ensure_split_file(card, s, root, download=False), dataset, s) for s in parts]
    if len(loaded) == 1:
        return loaded[0]
    return Split(
        dataset,
        "+".join(parts),
        [s for part in loaded for s in part.structures],
        [i for part in loaded for i in part.material_ids],
        "+".join(part.sha256 for part in loaded),
        [f for part in loaded for f in part.files],
        [len(part) for part in loaded],
    )


__all__ = [
    "BUILTIN_CARDS",
    "DatasetCard",
    "DatasetError",
    "Split",
    "SplitFile",
    "get_card",
    "load_split",
    "load_split_file",
    "parse_cif",
    "read_cif_csv",
    "split_status",
]
