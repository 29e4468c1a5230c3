"""The generator interface every plugin implements, and the metadata the registry lists without importing it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.targets import import_target

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from harness.cards import Split


@dataclass(frozen=True)
class GeneratorSpec:
    """What the registry knows of a generator before importing it."""

    name: str
    version: str
    target: str  # "package.module:ClassName", imported lazily
    paper: str = ""  # citation or DOI
    datasets: tuple[str, ...] = ()  # datasets it supports; empty means any
    description: str = ""
    distribution: str = ""  # filled by the registry from the entry point
    distribution_version: str = ""

    def load_class(self) -> type[Generator]:
        cls = import_target(self.target, Generator, f"generator {self.name!r}")
        if cls.version != Generator.version and cls.version != self.version:
            # records print the registered version; a class that says otherwise would make them lie
            raise TypeError(
                f"generator {self.name!r}: registered as version {self.version!r} but {self.target} says "
                f"{cls.version!r}; register the class's version"
            )
        return cls


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Generator.train` returns: where the checkpoint lies and what went into it."""

    checkpoint: Path
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Shipment:
    """What ``bench train --ship`` copies out of a training folder (file names in it) and where the generator's
    shipped checkpoints live: ``checkpoint`` becomes ``<checkpoint_dir>/<dataset>.pt``, ``manifest``
    ``<dataset>.manifest.json``, and the ``curves`` that exist go to ``results/training/<plugin>/<dataset>/``."""

    checkpoint_dir: Path
    checkpoint: str = "last.pt"  # the resumable file: weights with optimiser state, so a later run continues it
    manifest: str = "manifest.json"
    curves: tuple[str, ...] = ()


class Generator(ABC):
    """A generative model of crystals. Subclasses set ``name`` and ``version`` and implement the three methods.

    A generator is built for one dataset (``Generator(dataset_name)``), then trained or loaded, then sampled.
    ``sample`` returns pymatgen Structures; ``None`` (or a Structure that fails construction checks) counts as a
    sample the generator could not produce, never as a crash.
    """

    name: str = ""
    version: str = "0"
    progress: bool = True  # whether the generator's own progress bars show; the runner sets it from --no-progress

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.checkpoint_path: Path | None = None

    @abstractmethod
    def train(self, dataset: Split, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
        """Train on ``dataset`` (the training split the harness resolved) and write a checkpoint under ``out_dir``.

        ``bench train`` passes ``preset``, ``max_epochs``, ``max_minutes``, ``device``, ``batch_size``, ``resume``
        (continue from ``out_dir``'s own checkpoint), ``checkpoint_minutes`` (None: the generator's own) and
        ``on_checkpoint``: a callable of no arguments to call after each periodic checkpoint (``--ship`` ships it).
        """

    @abstractmethod
    def load(self, checkpoint: Path | None, device: str) -> None:
        """Load weights (``None``: the shipped default for ``self.dataset``) onto ``device``."""

    @abstractmethod
    def sample(self, n: int, seed: int, batch_size: int) -> list[Structure | None]:
        """Generate ``n`` structures, deterministically for a given ``seed``."""

    # Optional hooks with safe defaults.
    def default_checkpoint(self) -> Path | None:
        """The checkpoint shipped for ``self.dataset``, if any."""
        return None

    def shipment(self) -> Shipment | None:
        """What ``bench train --ship`` copies where; None: this generator ships no trained checkpoint."""
        return None

    def sampling_settings(self) -> dict[str, Any]:
        """Settings that shaped the samples (steps, temperature ...), recorded in the run record."""
        return {}

    def training_splits(self) -> list[str] | None:
        """The splits the loaded checkpoint was trained on, when known (recorded beside the run)."""
        return None


def resolve_device(device: str | None = None) -> str:
    """``cuda`` when present unless told otherwise."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
