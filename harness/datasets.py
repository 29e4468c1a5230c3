"""Loading what a dataset card describes: verified split files (downloaded where missing), parsed structures cached
by the file's hash, and unions of splits. The cards themselves are in ``harness.cards`` (re-exported here)."""

from __future__ import annotations

import pickle
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import paths
from harness.cards import BUILTIN_CARDS, DatasetCard, Split, SplitFile
from harness.io import atomic_write, sha256_file


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupt or malformed; the message says which and what to do."""


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


def read_split_column(split: Split, column: str) -> np.ndarray:
    """A numeric column of a loaded split's file(s), aligned with ``split.structures`` (float64; NaN where a file has
    no such column, e.g. MP-20's ``train_recovered`` carries no properties, or a cell is empty). A file with a
    different row count than its part of the split, or a cell that is not a number, is a clear error naming the file
    and row; a column that no part holds at all is refused."""
    import pandas as pd

    sizes = split.part_sizes or [len(split)]
    if len(sizes) != len(split.files):
        raise DatasetError(f"split {split.name!r}: {len(split.files)} file(s) for {len(sizes)} part(s)")
    parts, found = [], False
    for path, size in zip(split.files, sizes, strict=True):
        frame = pd.read_csv(path, usecols=lambda name: name == column, dtype=str, keep_default_na=False)
        if len(frame.columns) == 0:
            parts.append(np.full(size, np.nan))
            continue
        found = True
        if len(frame) != size:
            raise DatasetError(f"{path}: {len(frame)} rows of {column!r}, but the split holds {size} structures")
        values = np.full(size, np.nan)
        for row, text in enumerate(frame[column].tolist()):
            if text.strip() == "":
                continue
            try:
                values[row] = float(text)
            except ValueError:
                raise DatasetError(f"{path}: row {row + 2} (CSV line): {column} {text!r} is not a number") from None
        parts.append(values)
    if not found:
        raise DatasetError(f"split {split.dataset}:{split.name}: no file has a {column!r} column "
                           f"({', '.join(map(str, split.files))})")
    return np.concatenate(parts)


def split_head_csv(path: Path, n: int) -> bytes:
    """The first ``n`` rows of a split file as CSV bytes (``material_id``, ``cif``; ``\\n`` line ends): the rows of a
    sample file such as the ``data-<dataset>-val-first1000`` external sets, byte for byte."""
    import pandas as pd

    frame = pd.read_csv(path, usecols=["material_id", "cif"]).head(n)
    return frame.to_csv(index=False, lineterminator="\n").encode()


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
    """The registered card of dataset ``name``: for callers that hold only a name (scripts, plugins, a record's
    dataset). The harness resolves the name once, where a command starts, and passes the card down."""
    from harness.registry import get_registry

    return get_registry().dataset(name)


def as_card(dataset: DatasetCard | str) -> DatasetCard:
    """``dataset`` when it is a card already, else the registered card of that name."""
    return dataset if isinstance(dataset, DatasetCard) else get_card(dataset)


def load_split(dataset: DatasetCard | str, split: str, data_dir: str | Path | None = None,
               download: bool = True) -> Split:
    """Load ``split`` of ``dataset`` (a card, or a registered dataset's name); ``split`` may join several with
    ``+`` (``val+train_partial``)."""
    card = as_card(dataset)
    dataset = card.name
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
    "as_card",
    "get_card",
    "load_split",
    "load_split_file",
    "parse_cif",
    "read_cif_csv",
    "read_split_column",
    "split_head_csv",
    "split_status",
]
