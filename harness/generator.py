"""The generator interface every plugin implements, and the metadata the registry lists without importing it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.targets import import_target

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen.core import Structure

    from harness.cards import Split
    from harness.tasks import OptimisationRequest, PropertyTarget


@dataclass(frozen=True)
class GeneratorSpec:
    """What the registry knows of a generator before importing it."""

    name: str
    version: str
    target: str  # "package.module:ClassName", imported lazily
    paper: str = ""  # citation or DOI
    datasets: tuple[str, ...] = ()  # datasets it supports; empty means any
    description: str = ""
    # the protocol tasks it implements (harness/tasks.py); "conditional" needs Generator.sample_conditional,
    # "optimise" Generator.optimise
    tasks: tuple[str, ...] = ("unconditional",)
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

    def record_block(self) -> dict[str, Any]:
        """The generator as a run record names it (the record's ``plugin``)."""
        return {"name": self.name, "version": self.version, "distribution": self.distribution or None,
                "distribution_version": self.distribution_version or None}


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

    # The optional training settings this generator's train() acts on (bench train refuses the others): "condition"
    # (train a property-conditioned model or a property predictor on a split column) and "init_from" (fine-tune from
    # a checkpoint).
    train_options: tuple[str, ...] = ()

    # Optional hooks with safe defaults.
    def default_checkpoint(self) -> Path | None:
        """The checkpoint shipped for ``self.dataset``, if any."""
        return None

    def default_task_checkpoint(self, task: str) -> Path | None:
        """The checkpoint shipped for ``task`` on ``self.dataset`` (a conditional model is its own checkpoint);
        the unconditional task's is :meth:`default_checkpoint`."""
        return self.default_checkpoint() if task == "unconditional" else None

    def shipment(self) -> Shipment | None:
        """What ``bench train --ship`` copies where; None: this generator ships no trained checkpoint."""
        return None

    def sampling_settings(self) -> dict[str, Any]:
        """Settings that shaped the samples (steps, temperature ...), recorded in the run record."""
        return {}

    def training_splits(self) -> list[str] | None:
        """The splits the loaded checkpoint was trained on, when known (recorded beside the run)."""
        return None

    # Optional tasks (docs/protocol.md, "Tasks"). A generator that implements one overrides its method and names the
    # task in its GeneratorSpec.tasks; the harness calls a method only for a task the spec declares.
    def sample_conditional(self, n: int, target: PropertyTarget, seed: int, batch_size: int) -> list[Structure | None]:
        """Task ``conditional``: ``n`` structures conditioned on ``target`` (``target.property``, e.g.
        ``formation_energy_per_atom``, at ``target.value`` in ``target.unit``, eV/atom), deterministically for
        ``seed``, in batches of at most ``batch_size``. The harness calls it once per target (1,000 samples each) on
        a model trained with the dataset's DFT labels of that property. Returns a list of ``n``, as :meth:`sample`
        does: ``None`` for a sample it could not produce."""
        raise NotImplementedError(_missing_task(self, "conditional", "sample_conditional"))

    def optimise(self, starts: Sequence[Structure], request: OptimisationRequest,
                 seed: int) -> list[list[Structure | None]]:
        """Task ``optimise`` (CDVAE's procedure): encode each of ``starts`` (the first 100 structures of the test
        split, in file order) into the model's latent space, take ``request.gradient_steps`` Adam steps of
        ``request.learning_rate`` on the latents that move the model's own property predictor for
        ``request.property`` the ``request.better`` way, and decode after each 0-based step in
        ``request.decode_steps``. Returns one list per start, in the order of ``starts``, of
        ``len(request.decode_steps)`` decoded structures in step order, ``None`` where a decode failed;
        deterministic for ``seed``. The harness scores the decodes with the oracle its record names, never with
        the model's predictor."""
        raise NotImplementedError(_missing_task(self, "optimise", "optimise"))


def _missing_task(generator: Generator, task: str, method: str) -> str:
    name = generator.name or type(generator).__name__
    return (f"generator {name!r} does not implement task {task!r}: {type(generator).__name__}.{method} is not "
            f"overridden (declare a task in GeneratorSpec.tasks only when its method is implemented)")


def resolve_device(device: str | None = None) -> str:
    """``cuda`` when present unless told otherwise."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
