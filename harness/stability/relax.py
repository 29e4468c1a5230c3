"""CHGNet relaxation: a batched FIRE that runs many structures in lockstep, plus static scoring.

Each structure gets its own ASE ``FIRE`` optimizer over a cell filter, exactly as CHGNet's ``StructOptimizer``
would build it; only the model calls are shared: every round, the forces and stresses of all active structures
come from one batched CHGNet call, and each optimizer then takes its step from those cached results. So the
trajectories are the ones ``StructOptimizer`` follows (up to float noise from batching), at a fraction of the cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SETTINGS",
    "RelaxResult",
    "RelaxSettings",
    "load_model",
    "relax_batched",
    "relax_one_struct_optimizer",
    "score_static",
]


@dataclass(frozen=True)
class RelaxSettings:
    """Everything that fixes a relaxation; recorded verbatim in a run's info."""

    model: str = "0.3.0"
    optimizer: str = "FIRE"
    fmax: float = 0.1  # eV/Å, on atoms and (filter-scaled) cell degrees of freedom
    max_steps: int = 500
    cell_filter: str = "FrechetCellFilter"
    stress_weight: float = 1 / 160.21766208  # GPa -> eV/Å^3, as CHGNet's calculator
    batch_size: int = 32  # structures per batched model call

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_SETTINGS = RelaxSettings()

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


@lru_cache(maxsize=2)
def load_model(name: str = "0.3.0"):
    """The CHGNet model ``name`` on the GPU when there is one, else the CPU (cached per process)."""
    import torch
    from chgnet.model import CHGNet

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return CHGNet.load(model_name=name, use_device=device, verbose=False)


def _energy_forces_stress(model, graphs: Sequence[Any]) -> list[dict]:
    """CHGNet's ``predict_graph(task="efs")`` in one backward pass instead of two.

    ``CHGNet._compute`` (0.3.0) takes forces and stresses with two ``autograd.grad`` calls that each build a
    second-order graph (``create_graph=True``, needed only for training on forces). Inference needs neither: one
    first-order gradient of the same total energy with respect to positions and strains gives the same numbers up
    to float32 summation order (forces within 1e-4 eV/Å, stresses within 1e-3 GPa, as large as ``predict_graph``'s
    own change between batch sizes) in a third to a half of the time on a CPU. The energy comes from CHGNet's own
    forward and is bit-identical.
    """
    import torch
    from chgnet.model.model import BatchedGraph

    model.eval()
    device = next(model.parameters()).device
    graphs = [g.to(device) for g in graphs]
    composition = 0 if model.composition_model is None else model.composition_model(graphs)
    batched = BatchedGraph.from_graphs(
        graphs,
        bond_basis_expansion=model.bond_basis_expansion,
        angle_basis_expansion=model.angle_basis_expansion,
        compute_stress=True,
    )
    pred = model._compute(batched)  # energy only, per atom when the model is intensive (as CHGNet 0.3.0 is)
    energy = pred["e"]
    total = energy * pred["atoms_per_graph"] if model.is_intensive else energy
    n = len(graphs)
    grads = torch.autograd.grad(total.sum(), [*batched.atom_positions, *batched.strains])
    energy = (energy + composition).detach().cpu().numpy()
    scale = 1 / batched.volumes * 160.21766208  # eV/Å^3 -> GPa, as CHGNet
    return [
        {
            "e": energy[i],
            "f": (-1 * grads[i]).detach().cpu().numpy(),
            "s": (grads[n + i] * scale[i]).detach().cpu().numpy(),
        }
        for i in range(n)
    ]


def _predict_graphs(model, graphs: Sequence[Any], task: str) -> list[dict]:
    if task == "efs":
        return _energy_forces_stress(model, graphs)
    preds = model.predict_graph(list(graphs), task=task, batch_size=len(graphs))
    return preds if isinstance(preds, list) else [preds]


def _error_text(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:300] if message else type(exc).__name__


def _predict(model, structures: Sequence[Any], task: str, batch_size: int) -> list[dict | str]:
    """Batched CHGNet predictions; a structure whose graph or prediction fails gets its error text instead."""
    out: list[dict | str] = [""] * len(structures)
    graphs, where = [], []
    for i, structure in enumerate(structures):
        try:
            graphs.append(model.graph_converter(structure))
            where.append(i)
        except Exception as exc:
            out[i] = _error_text(exc)
    for start in range(0, len(graphs), batch_size):
        chunk, idx = graphs[start : start + batch_size], where[start : start + batch_size]
        try:
            preds = _predict_graphs(model, chunk, task)
        except Exception:
            preds = []
            for graph in chunk:  # isolate the one that fails
                try:
                    preds.append(_predict_graphs(model, [graph], task)[0])
                except Exception as exc:
                    preds.append(_error_text(exc))
        for i, pred in zip(idx, preds):
            if isinstance(pred, dict) and not all(np.all(np.isfinite(v)) for v in pred.values()):
                pred = "ValueError: non-finite CHGNet prediction"
            out[i] = pred
    return out


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

    model = load_model(model_name)
    energies: list[float | str] = []
    with tqdm(total=len(structures), desc=desc, unit="struct", disable=not progress, mininterval=1) as bar:
        for start in range(0, len(structures), batch_size * 8):
            chunk = structures[start : start + batch_size * 8]
            for pred in _predict(model, chunk, "e", batch_size):
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

    def result(self, pred: dict | None, converged: bool, error: str | None = None) -> RelaxResult:
        seconds = time.perf_counter() - self.start
        if error is not None:
            return RelaxResult(None, None, False, self.steps, error, seconds)
        return RelaxResult(float(pred["e"]), self.structure(), converged, self.steps, None, seconds)


def relax_batched(
    structures: Sequence[Any],
    settings: RelaxSettings = DEFAULT_SETTINGS,
    *,
    keys: Sequence[Any] | None = None,
    on_result: Callable[[Any, RelaxResult], None] | None = None,
    relax_cell: bool | Sequence[bool] = True,
    progress: bool = False,
    desc: str = "relaxing",
) -> list[RelaxResult]:
    """Relax ``structures`` with one FIRE per structure and batched CHGNet calls; never raises for one structure.

    Up to ``settings.batch_size`` structures are active at once; a finished one (converged, step cap reached, or
    failed) is handed to ``on_result(key, result)`` at once and replaced by the next waiting structure.
    """
    from tqdm.auto import tqdm

    model = load_model(settings.model)
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

    with tqdm(total=len(structures), desc=desc, unit="struct", disable=not progress, mininterval=1) as bar:
        while waiting or active:
            while waiting and len(active) < settings.batch_size:
                i = waiting.pop()
                try:
                    active[i] = _Job(keys[i], structures[i], settings, cells[i])
                except Exception as exc:
                    finish(i, RelaxResult(None, None, False, 0, _error_text(exc)))
            for i in list(active):
                volume = active[i].atoms.get_volume() / len(active[i].atoms)
                if not VOLUME_PER_ATOM_BOUNDS[0] <= volume <= VOLUME_PER_ATOM_BOUNDS[1]:
                    finish(i, active[i].result(None, False, f"cell volume {volume:.3g} Å^3/atom outside "
                                               f"{VOLUME_PER_ATOM_BOUNDS}: collapsed or blew up"))
            if not active:
                continue
            order = list(active)
            preds = _predict(model, [active[i].structure() for i in order], task, settings.batch_size)
            for i, pred in zip(order, preds):
                job = active[i]
                if isinstance(pred, str):
                    finish(i, job.result(None, False, pred))
                    continue
                try:
                    job.inject(pred, settings.stress_weight)
                    if job.converged():
                        finish(i, job.result(pred, True))
                    elif job.steps >= settings.max_steps:
                        finish(i, job.result(pred, False))
                    else:
                        job.optimizer.step()
                        job.steps += 1
                        job.optimizer.nsteps += 1
                except Exception as exc:
                    finish(i, job.result(None, False, _error_text(exc)))
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
        return RelaxResult(None, None, False, 0, _error_text(exc), time.perf_counter() - start)
    trajectory = out["trajectory"]
    final = out["final_structure"]
    steps = max(len(trajectory.energies) - 2, 0)  # the observer records the start and the end once more
    forces = trajectory.forces[-1]
    energy = float(trajectory.energies[-1]) / len(final)
    converged = steps < settings.max_steps and math.isfinite(energy) and forces is not None
    return RelaxResult(energy, final, converged, steps, None, time.perf_counter() - start)
