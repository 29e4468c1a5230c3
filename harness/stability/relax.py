"""Relaxation: a batched FIRE that runs many structures in lockstep, plus static scoring, for any relaxer.

Each structure gets its own ASE ``FIRE`` optimizer over a cell filter, exactly as CHGNet's ``StructOptimizer``
would build it; only the model calls are shared: every round, the forces and stresses of all active structures
come from one batched call of the relaxer (:mod:`harness.relaxer`; CHGNet 0.3.0 is the protocol's), and each
optimizer then takes its step from those cached results. So with CHGNet the trajectories are the ones
``StructOptimizer`` follows (up to float noise from batching), at a fraction of the cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from harness.relaxer import PROTOCOL_RELAXER, Relaxer, error_text
from harness.stability.chgnet import load_model

__all__ = [
    "DEFAULT_SETTINGS",
    "MODEL_CALL_MAX_ATOMS",
    "RelaxResult",
    "RelaxSettings",
    "load_model",
    "load_relaxer",
    "relax_batched",
    "relax_one_struct_optimizer",
    "score_static",
]


_LOADED: dict[tuple[str, str], Relaxer] = {}


def load_relaxer(name: str = PROTOCOL_RELAXER, model: str | None = None) -> Relaxer:
    """The registered relaxer ``name`` with weights ``model`` (default: the relaxer's own), once per process."""
    from harness.registry import get_registry

    spec = get_registry().relaxer(name)
    key = (name, model or spec.model)
    if key not in _LOADED:
        _LOADED[key] = spec.load_class()(spec, model)
    return _LOADED[key]


@dataclass(frozen=True)
class RelaxSettings:
    """Everything that fixes a relaxation; recorded verbatim in a run's info."""

    model: str = "0.3.0"  # the relaxer's weights

    optimizer: str = "FIRE"
    fmax: float = 0.1  # eV/Å, on atoms and (filter-scaled) cell degrees of freedom
    max_steps: int = 500
    cell_filter: str = "FrechetCellFilter"
    stress_weight: float = 1 / 160.21766208  # GPa -> eV/Å^3, as CHGNet's calculator
    batch_size: int = 32  # structures per batched model call
    relaxer: str = PROTOCOL_RELAXER  # a registered relaxer (``bench plugins`` lists them)

    @classmethod
    def for_relaxer(cls, name: str = PROTOCOL_RELAXER, **overrides: Any) -> RelaxSettings:
        """The protocol's settings with relaxer ``name`` and its default weights."""
        if name == PROTOCOL_RELAXER:
            return cls(**overrides)
        from harness.registry import get_registry

        return cls(relaxer=name, model=get_registry().relaxer(name).model, **overrides)

    def as_dict(self) -> dict[str, Any]:
        """The settings as recorded and hashed; the protocol relaxer's name is left out, so that its settings keep
        the identity (relaxation folders, reference caches, shipped hulls) they had before relaxers were plugins."""
        out = asdict(self)
        if out["relaxer"] == PROTOCOL_RELAXER:
            del out["relaxer"]
        return out


DEFAULT_SETTINGS = RelaxSettings()

# The most atoms one model call holds (besides ``RelaxSettings.batch_size`` structures): a call's memory grows with
# its atoms (CHGNet's graphs and their gradients: ~1.1 GB above the process for 32 MP-20 samples of ~13 atoms), so
# this bounds a relaxation worker's memory whatever the structures. Which structures share a call changes forces only
# by float32 summation order (as the worker count already does), so it is an execution setting: recorded beside the
# relaxation settings, not hashed with them. Measured: benchmarks/relax_memory.py.
MODEL_CALL_MAX_ATOMS = 128

# numpy's and scipy's BLAS threads while relax_batched runs (None: left as they are; a benchmark's other side).
RELAX_BLAS_THREADS: int | None = 1

# A structure whose cell leaves this range (Å^3 per atom) is stopped and recorded as failed: a collapsing cell gives
# CHGNet a graph with thousands of neighbours per atom (one such element candidate took 22 GB and the process).
# The densest known solids hold ~5 Å^3/atom; the wide bounds never touch a physical relaxation.
VOLUME_PER_ATOM_BOUNDS = (2.0, 1000.0)


@dataclass(frozen=True)
class RelaxResult:
    """One relaxation: final energy (eV/atom) and structure, or the error that stopped it."""

    energy_per_atom: float | None
    structure: Any  # pymatgen Structure | None
    converged: bool
    steps: int
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "energy_per_atom": self.energy_per_atom,
            "structure": None if self.structure is None else self.structure.as_dict(),
            "converged": self.converged,
            "steps": self.steps,
            "error": self.error,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RelaxResult:
        from pymatgen.core import Structure

        structure = Structure.from_dict(obj["structure"]) if obj.get("structure") else None
        return cls(
            obj["energy_per_atom"],
            structure,
            bool(obj["converged"]),
            int(obj["steps"]),
            obj.get("error"),
            float(obj.get("seconds", 0.0)),
        )


def score_static(
    structures: Sequence[Any],
    *,
    model_name: str = "0.3.0",
    batch_size: int = 32,
    progress: bool = False,
    desc: str = "scoring",
) -> list[float | str]:
    """CHGNet energy per atom of each structure as given (no relaxation); the error text where it fails."""
    from tqdm.auto import tqdm

    model = load_relaxer(PROTOCOL_RELAXER, model_name)
    energies: list[float | str] = []
    with tqdm(total=len(structures), desc=desc, unit="struct", disable=not progress, mininterval=1) as bar:
        for start in range(0, len(structures), batch_size * 8):
            chunk = structures[start : start + batch_size * 8]
            for pred in model.predict(chunk, "e", batch_size):
                energies.append(pred if isinstance(pred, str) else float(pred["e"]))
            bar.update(len(chunk))
    return energies


@lru_cache(maxsize=1)
def _cached_calculator_class():
    """An ASE calculator class that serves results computed elsewhere and refuses to compute anything itself."""
    from ase.calculators.calculator import Calculator

    class CachedResults(Calculator):
        implemented_properties = ("energy", "free_energy", "forces", "stress")

        def calculate(self, atoms=None, properties=None, system_changes=None):
            raise RuntimeError("batched relaxation: no result injected for these positions")

    return CachedResults


class _Job:
    """One structure being relaxed: its atoms, filter, optimizer and bookkeeping."""

    def __init__(self, key: Any, structure, settings: RelaxSettings, relax_cell: bool):
        from ase import filters, optimize
        from pymatgen.io.ase import AseAtomsAdaptor

        from harness.stability import cellmath

        self.key = key
        self.start = time.perf_counter()
        self.atoms = AseAtomsAdaptor().get_atoms(structure)
        for name in list(self.atoms.arrays):  # site properties such as magmoms are not relaxation inputs
            if name not in ("numbers", "positions"):
                del self.atoms.arrays[name]
        self.atoms.calc = _cached_calculator_class()()
        target = getattr(filters, settings.cell_filter)(self.atoms) if relax_cell else self.atoms
        if relax_cell:
            cellmath.install(target)
        self.optimizer = getattr(optimize, settings.optimizer)(target, logfile=None)
        self.optimizer.fmax = settings.fmax
        self.steps = 0
        # The cell filter's gradient (a matrix log per call) is computed once per step, not twice.
        self._gradient = None
        optimizable = self.optimizer.optimizable
        uncached = optimizable.get_gradient

        def gradient():
            if self._gradient is None:
                self._gradient = uncached()
            return self._gradient

        optimizable.get_gradient = gradient

    def structure(self):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(self.atoms)

    def inject(self, pred: dict, stress_weight: float) -> None:
        calc = self.atoms.calc
        n = len(self.atoms)
        energy = float(pred["e"]) * n
        calc.results = {"energy": energy, "free_energy": energy, "forces": np.asarray(pred["f"], dtype=float)}
        if "s" in pred:
            calc.results["stress"] = np.asarray(pred["s"], dtype=float) * stress_weight
        calc.atoms = self.atoms.copy()
        self._gradient = None

    def converged(self) -> bool:
        gradient = self.optimizer.optimizable.get_gradient()
        return bool(self.optimizer.gradient_converged(gradient))

    def result(self, pred: dict | None, converged: bool, error: str | None = None, relaxer=None) -> RelaxResult:
        """The outcome; the energy on the Materials Project's (MP2020-corrected) scale when ``relaxer`` says how."""
        seconds = time.perf_counter() - self.start
        if error is not None:
            return RelaxResult(None, None, False, self.steps, error, seconds)
        structure = self.structure()
        energy = float(pred["e"])
        if relaxer is not None:
            try:
                energy = relaxer.mp_compatible_energy(structure, energy)
            except Exception as exc:
                return RelaxResult(None, None, False, self.steps, f"energy scale: {error_text(exc)}", seconds)
        return RelaxResult(energy, structure, converged, self.steps, None, seconds)


def relax_batched(
    structures: Sequence[Any],
    settings: RelaxSettings = DEFAULT_SETTINGS,
    *,
    keys: Sequence[Any] | None = None,
    on_result: Callable[[Any, RelaxResult], None] | None = None,
    relax_cell: bool | Sequence[bool] = True,
    progress: bool = False,
    desc: str = "relaxing",
    max_atoms: int | None = MODEL_CALL_MAX_ATOMS,
) -> list[RelaxResult]:
    """Relax ``structures`` with one FIRE per structure and batched relaxer calls; never raises for one structure.

    Up to ``settings.batch_size`` structures are active at once; a finished one (converged, step cap reached, or
    failed) is handed to ``on_result(key, result)`` at once and replaced by the next waiting structure. A model call
    holds at most ``max_atoms`` atoms of them (None: no bound), which bounds the memory.

    numpy's and scipy's BLAS run on ``RELAX_BLAS_THREADS`` (one) thread meanwhile; threadpoolctl reaches the
    OpenBLAS copies numpy and scipy each bundle, which environment variables do not once they are loaded. The
    optimisers' linear algebra is on 3×3 matrices and vectors of a few atoms, and a BLAS pool woken for each such
    call (the cell filter's ``expm``, every step) cost more than the call: relaxing 32 MP-20 samples in one process
    beside a two-worker run took 1.43 times the CPU time with BLAS on both cores, to identical results
    (``benchmarks/bench_relax.py blas-threads``, ``results/benchmarks/relax_blas_threads_mp20.json``). Spawned
    relaxation workers are pinned already. torch's threads are left as they are.
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    model = load_relaxer(settings.relaxer, settings.model)
    keys = list(range(len(structures))) if keys is None else list(keys)
    cells = [relax_cell] * len(structures) if isinstance(relax_cell, bool) else list(relax_cell)
    task = "efs"
    results: dict[int, RelaxResult] = {}
    waiting = list(range(len(structures)))[::-1]
    active: dict[int, _Job] = {}

    def finish(i: int, result: RelaxResult) -> None:
        results[i] = result
        active.pop(i, None)
        if on_result is not None:
            on_result(keys[i], result)
        bar.update(1)

    with (tqdm(total=len(structures), desc=desc, unit="struct", disable=not progress, mininterval=1) as bar,
          threadpool_limits(limits=RELAX_BLAS_THREADS, user_api="blas")):
        while waiting or active:
            while waiting and len(active) < settings.batch_size:
                i = waiting.pop()
                try:
                    active[i] = _Job(keys[i], structures[i], settings, cells[i])
                except Exception as exc:
                    finish(i, RelaxResult(None, None, False, 0, error_text(exc)))
            for i in list(active):
                volume = active[i].atoms.get_volume() / len(active[i].atoms)
                if not VOLUME_PER_ATOM_BOUNDS[0] <= volume <= VOLUME_PER_ATOM_BOUNDS[1]:
                    finish(i, active[i].result(None, False, f"cell volume {volume:.3g} Å^3/atom outside "
                                               f"{VOLUME_PER_ATOM_BOUNDS}: collapsed or blew up"))
            if not active:
                continue
            order = list(active)
            preds = model.predict([active[i].structure() for i in order], task, settings.batch_size, max_atoms)
            for i, pred in zip(order, preds):
                job = active[i]
                if isinstance(pred, str):
                    finish(i, job.result(None, False, pred))
                    continue
                try:
                    job.inject(pred, settings.stress_weight)
                    if job.converged():
                        finish(i, job.result(pred, True, relaxer=model))
                    elif job.steps >= settings.max_steps:
                        finish(i, job.result(pred, False, relaxer=model))
                    else:
                        job.optimizer.step()
                        job.steps += 1
                        job.optimizer.nsteps += 1
                except Exception as exc:
                    finish(i, job.result(None, False, error_text(exc)))
    return [results[i] for i in range(len(structures))]


def relax_one_struct_optimizer(
    structure, settings: RelaxSettings = DEFAULT_SETTINGS, optimizer=None
) -> RelaxResult:
    """The baseline: CHGNet's own ``StructOptimizer`` on one structure (the benchmark's reference path)."""
    from chgnet.model import StructOptimizer

    start = time.perf_counter()
    optimizer = optimizer or StructOptimizer(
        model=load_model(settings.model),
        optimizer_class=settings.optimizer,
        use_device="cpu",
        stress_weight=settings.stress_weight,
    )
    try:
        out = optimizer.relax(
            structure,
            fmax=settings.fmax,
            steps=settings.max_steps,
            relax_cell=True,
            ase_filter=settings.cell_filter,
            verbose=False,
            assign_magmoms=False,
        )
    except Exception as exc:
        return RelaxResult(None, None, False, 0, error_text(exc), time.perf_counter() - start)
    trajectory = out["trajectory"]
    final = out["final_structure"]
    steps = max(len(trajectory.energies) - 2, 0)  # the observer records the start and the end once more
    forces = trajectory.forces[-1]
    energy = float(trajectory.energies[-1]) / len(final)
    converged = steps < settings.max_steps and math.isfinite(energy) and forces is not None
    return RelaxResult(energy, final, converged, steps, None, time.perf_counter() - start)
