"""The relaxer interface: an interatomic potential that relaxes samples for stability, registered as a plugin.

A relaxer gives energies, forces and stresses of many structures at once; the batched FIRE of
:mod:`harness.stability.relax` drives every relaxer the same way, so two relaxers differ only in their potential.
The protocol's relaxer is CHGNet 0.3.0 (:data:`PROTOCOL_RELAXER`, what the papers used); records relaxed by any
other are shown apart from protocol rows (docs/protocol.md, "Relaxers").
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.targets import import_target

PROTOCOL_RELAXER = "chgnet"
PREDICTION_TASKS = ("e", "efs")


@dataclass(frozen=True)
class RelaxerSpec:
    """What the registry knows of a relaxer before importing it (listing relaxers never imports torch)."""

    name: str
    version: str  # of the adapter: bumped when the relaxer's numbers could change for the same weights
    target: str  # "package.module:ClassName", imported lazily
    package: str  # the distribution whose version the record carries ("chgnet", "sevenn")
    model: str  # the default weights' name
    description: str = ""
    distribution: str = ""  # filled by the registry from the entry point
    distribution_version: str = ""

    def load_class(self) -> type[Relaxer]:
        return import_target(self.target, Relaxer, f"relaxer {self.name!r}")


def error_text(exc: BaseException) -> str:
    """One line naming the exception, as per-sample tables store it."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:300] if message else type(exc).__name__


@contextmanager
def flushed_denormals(enabled: bool = True) -> Iterator[None]:
    """Within the block, the CPU flushes subnormal floats (below 1.2e-38 in float32) to zero.

    A relaxer's backward pass on a CPU meets subnormal numbers, and every arithmetic operation on one takes the
    processor's slow path: relaxing 32 of SymmBFN's MP-20 samples took 1.44 times the CPU time without flushing, to
    the same final energies, step counts and outcomes (``benchmarks/bench_relax.py denormals``,
    ``results/benchmarks/relax_denormals_mp20.json``). Flushing drops only terms below 1e-38, far below float32's
    resolution of the sums they enter. The flag belongs to the calling thread (the relaxation workers run torch on
    one thread); it is cleared on leaving, torch's default.
    """
    import torch

    if not (enabled and torch.set_flush_denormal(True)):  # False: this CPU cannot flush; nothing to undo
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class Relaxer(ABC):
    """A potential that predicts many structures at once.

    Subclasses set ``label`` (used in error texts) and implement :meth:`prepare` (one structure's model input,
    raising for a structure the potential cannot take), :meth:`compute` (a batch of prepared inputs) and
    :meth:`weights_path`. :meth:`predict` does the batching, isolates a failing structure and refuses non-finite
    numbers. Predictions are dicts: ``e`` energy per atom (eV), with task ``efs`` also ``f`` forces (n × 3, eV/Å)
    and ``s`` the stress (3 × 3, GPa, ASE's sign: positive is tensile).
    """

    label = "relaxer"
    flush_denormals = True  # see flushed_denormals; a benchmark turns it off to measure what it saves
    # How the predicted energies relate to the Materials Project's scale, which the MP hull is on: "as predicted"
    # for a potential trained on MP2020-corrected energies (CHGNet), "MP2020 after prediction" for one trained on
    # MPtrj's uncorrected energies (SevenNet-0), whose :meth:`mp_compatible_energy` applies the corrections.
    energy_scale = "as predicted (trained on MP2020-corrected energies)"

    def __init__(self, spec: RelaxerSpec, model: str | None = None, device: str | None = None):
        import torch

        self.spec = spec
        self.model_name = model or spec.model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    @abstractmethod
    def prepare(self, structure) -> Any:
        """The model's input for one pymatgen Structure."""

    @abstractmethod
    def compute(self, prepared: Sequence[Any], task: str) -> list[dict[str, Any]]:
        """Predictions for a batch of prepared inputs (task ``e`` or ``efs``), in order."""

    @abstractmethod
    def weights_path(self) -> Path:
        """The weights file (its sha256 goes into every record)."""

    def predict(self, structures: Sequence[Any], task: str, batch_size: int,
                max_atoms: int | None = None) -> list[dict | str]:
        """Batched predictions; a structure whose input or prediction fails gets its error text instead.

        A model call takes at most ``batch_size`` structures and, when ``max_atoms`` is given, at most that many
        atoms (but always one structure): the call's memory grows with its atoms, so this bounds it.
        """
        import numpy as np

        if task not in PREDICTION_TASKS:
            raise ValueError(f"unknown prediction task {task!r}: expected one of {PREDICTION_TASKS}")
        out: list[dict | str] = [""] * len(structures)
        prepared, where = [], []
        for i, structure in enumerate(structures):
            try:
                prepared.append(self.prepare(structure))
                where.append(i)
            except Exception as exc:
                out[i] = error_text(exc)
        for start, stop in _spans([len(structures[i]) for i in where], batch_size, max_atoms):
            chunk, idx = prepared[start:stop], where[start:stop]
            with flushed_denormals(self.flush_denormals):
                try:
                    preds: list[dict | str] = list(self.compute(chunk, task))
                except Exception:
                    preds = []
                    for item in chunk:  # isolate the one that fails
                        try:
                            preds.append(self.compute([item], task)[0])
                        except Exception as exc:
                            preds.append(error_text(exc))
            for i, pred in zip(idx, preds):
                if isinstance(pred, dict) and not all(np.all(np.isfinite(v)) for v in pred.values()):
                    pred = f"ValueError: non-finite {self.label} prediction"
                out[i] = pred
        return out

    def mp_compatible_energy(self, structure, energy_per_atom: float) -> float:
        """A relaxed structure's energy per atom on the Materials Project's corrected scale (default: unchanged)."""
        return energy_per_atom

    def weights_sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.weights_path(), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a record says of the relaxer: name, adapter version, package and its version, weights and hash."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            package_version = version(self.spec.package)
        except PackageNotFoundError:
            package_version = None
        return {
            "name": self.spec.name,
            "adapter_version": self.spec.version,
            "package": self.spec.package,
            "package_version": package_version,
            "model": self.model_name,
            "weights_file": self.weights_path().name,
            "weights_sha256": self.weights_sha256(),
            "energy_scale": self.energy_scale,
            "protocol": self.spec.name == PROTOCOL_RELAXER,
        }


def _spans(sizes: Sequence[int], batch_size: int, max_atoms: int | None) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` runs over items of ``sizes`` atoms: at most ``batch_size`` items and, where
    given, ``max_atoms`` atoms each; an item larger than ``max_atoms`` is a run of its own."""
    spans: list[tuple[int, int]] = []
    start, atoms = 0, 0
    for k, size in enumerate(sizes):
        if k > start and (k - start >= batch_size or (max_atoms is not None and atoms + size > max_atoms)):
            spans.append((start, k))
            start, atoms = k, 0
        atoms += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans
