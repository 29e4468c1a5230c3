"""CHGNet 0.3.0, the protocol's relaxer: batched energies, forces and stresses in one backward pass."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.relaxer import Relaxer

__all__ = ["ChgnetRelaxer", "load_model"]


@lru_cache(maxsize=2)
def load_model(name: str = "0.3.0", device: str | None = None):
    """The CHGNet model ``name`` on ``device`` (default: the GPU when there is one, else the CPU), once per process."""
    import torch
    from chgnet.model import CHGNet

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return CHGNet.load(model_name=name, use_device=device, verbose=False)


def energy_forces_stress(model, graphs: Sequence[Any]) -> list[dict]:
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


class ChgnetRelaxer(Relaxer):
    """CHGNet: its own crystal graphs; energies per atom, forces, stresses in GPa (CHGNet's sign is ASE's)."""

    label = "CHGNet"
    array_graphs = True  # harness.stability.chgnet_graph; a benchmark turns it off to time CHGNet's own converter

    @property
    def model(self):
        return load_model(self.model_name, self.device)

    def prepare(self, structure):
        if self.array_graphs:
            from harness.stability.chgnet_graph import crystal_graph

            return crystal_graph(self.model.graph_converter, structure)
        return self.model.graph_converter(structure)

    def compute(self, prepared, task):
        if task == "efs":
            return energy_forces_stress(self.model, prepared)
        preds = self.model.predict_graph(list(prepared), task=task, batch_size=len(prepared))
        return preds if isinstance(preds, list) else [preds]

    def weights_path(self) -> Path:
        import chgnet

        folder = Path(chgnet.__file__).parent / "pretrained" / self.model_name
        files = sorted(folder.glob("*.pth.tar"))
        if len(files) != 1:
            raise FileNotFoundError(f"CHGNet {self.model_name}: expected one weights file in {folder}, found {len(files)}")
        return files[0]
