"""Where xtalbench reads data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "XTALBENCH_DATA"
CACHE_ENV = "XTALBENCH_CACHE"
REFERENCE_ENV = "XTALBENCH_REFERENCE"
EXTERNAL_ENV = "XTALBENCH_EXTERNAL"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The dataset directory: the explicit argument, else $XTALBENCH_DATA, else a per-user data dir."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("xtalbench")) / "datasets"


def reference_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The Materials Project reference files: the argument, $XTALBENCH_REFERENCE, ``reference/mp`` beside the data
    directory when it exists, else a per-user folder."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(REFERENCE_ENV):
        return Path(os.environ[REFERENCE_ENV]).expanduser().resolve()
    beside = data_dir().parent / "reference" / "mp"
    if beside.exists():
        return beside
    import platformdirs

    return Path(platformdirs.user_data_dir("xtalbench")) / "reference" / "mp"


def external_dir(explicit: str | os.PathLike | None = None, data: str | os.PathLike | None = None) -> Path:
    """Other models' posted sample files (``harness/data/external/`` manifests pin them by sha256): the argument,
    $XTALBENCH_EXTERNAL, else ``external-samples`` beside the data directory (``data``, else ``data_dir()``)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(EXTERNAL_ENV):
        return Path(os.environ[EXTERNAL_ENV]).expanduser().resolve()
    return data_dir(data).parent / "external-samples"


def cache_dir(sub: str = "") -> Path:
    """A cache directory ($XTALBENCH_CACHE, else the per-user cache dir), created on demand."""
    if os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("xtalbench"))
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path
