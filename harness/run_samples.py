"""A record's samples, wherever they are kept: beside the record, retired to the commit the record names (``bench
retire``), or in the posted file of an external set. Above :mod:`harness.records`, :mod:`harness.retire` and
:mod:`harness.external`, which it reads through."""

from __future__ import annotations

from pathlib import Path

from harness.evaluation_types import Sample
from harness.external import PostedFileError, read_posted_samples
from harness.retire import RetireError, read_retired
from harness.samples import SampleFileError, read_run_samples

__all__ = ["record_samples"]


def record_samples(run_dir: str | Path, record: dict, *, data_dir: str | Path | None = None,
                   external_dir: str | Path | None = None) -> list[Sample]:
    """A record's samples in sample order: its own samples file beside it, or, for an external set, the posted file
    its ``files.posted_samples`` names (read through the set's manifest, sha256 verified: ``harness.external``)."""
    files = record["files"]
    if files.get("samples"):
        return read_run_samples(Path(run_dir) / files["samples"], record["n_samples"])
    if files.get("retired_samples"):  # superseded: read back from the commit the record names (bench retire)
        try:
            text = read_retired(run_dir, record)
        except RetireError as exc:
            raise SampleFileError(str(exc)) from None
        return read_run_samples(Path(run_dir) / files["retired_samples"]["file"], record["n_samples"], text)
    posted = files.get("posted_samples")
    if not posted:
        raise SampleFileError(f"{run_dir}: the record names neither a samples file nor a posted one")
    samples = read_posted_samples(posted, external_dir=external_dir, data_dir=data_dir)
    if len(samples) != record["n_samples"]:
        raise PostedFileError(f"{run_dir}: {posted['file']} holds {len(samples):,} samples, the record "
                              f"{record['n_samples']:,}")
    return samples
