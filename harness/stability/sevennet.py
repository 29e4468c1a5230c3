"""SevenNet-0 as a relaxer: its weights ship in the ``sevenn`` wheel, batched through torch_geometric's collater.

The protocol's relaxer stays CHGNet; records relaxed by SevenNet-0 are shown apart (docs/protocol.md, "Relaxers").
SevenNet-0 was trained on MPtrj's *uncorrected* energies (CHGNet on the MP2020-corrected ones), so its relaxed
energies get the MP2020 corrections before they meet the Materials Project hull, as Matbench Discovery does for it. torch-sim, the field's batched-relaxation engine, needs
Python 3.12; the batched FIRE of :mod:`harness.stability.relax` batches the model calls instead.
"""

from __future__ import annotations

from pathlib import Path

from harness.relaxer import Relaxer

__all__ = ["SevennetRelaxer"]


class SevennetRelaxer(Relaxer):
    """SevenNet (default weights ``7net-0``): total energy, forces and the virial stress of a batch of graphs."""

    label = "SevenNet"
    energy_scale = ("MP2020 corrections applied after prediction (SevenNet-0 was trained on MPtrj's uncorrected "
                    "energies, as Matbench Discovery's SevenNet evaluation says and does)")

    def __init__(self, spec, model=None, device=None):
        super().__init__(spec, model, device)
        try:
            import sevenn._keys as keys
            import sevenn.util as util
        except ImportError as exc:
            raise ImportError("the sevennet relaxer needs the sevenn package: pip install 'xtalbench[sevennet]'") from exc
        self._keys = keys
        self._path = Path(util.pretrained_name_to_path(self.model_name))
        self._model = None

    def _load(self) -> None:
        import sevenn.util as util

        checkpoint = util.load_checkpoint(str(self._path))
        self.cutoff = checkpoint.config[self._keys.CUTOFF]
        self.type_map = checkpoint.config[self._keys.TYPE_MAP]
        model = checkpoint.build_model()
        model.set_is_batch_data(True)
        self._model = model.to(self.device).eval()

    @property
    def model(self):
        """The network, loaded on first use (describing the relaxer for a record needs only its weights file)."""
        if self._model is None:
            self._load()
        return self._model

    def prepare(self, structure):
        from pymatgen.io.ase import AseAtomsAdaptor
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        self.model  # noqa: B018 (loads cutoff and type map)
        unknown = sorted({site.specie.symbol for site in structure if site.specie.Z not in self.type_map})
        if unknown:
            raise ValueError(f"SevenNet {self.model_name} has no parameters for {', '.join(unknown)}")
        atoms = AseAtomsAdaptor().get_atoms(structure)
        return AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False))

    def compute(self, prepared, task):
        from ase.stress import voigt_6_to_full_3x3_stress
        from torch_geometric.loader.dataloader import Collater

        keys = self._keys
        batch = Collater([], follow_batch=None, exclude_keys=None)(list(prepared)).to(self.device)
        output = self.model(batch)
        energy = output[keys.PRED_TOTAL_ENERGY].detach().cpu().numpy()
        counts = [int(g[keys.NUM_ATOMS]) for g in prepared]
        if task == "e":
            return [{"e": energy[i] / n} for i, n in enumerate(counts)]
        forces = output[keys.PRED_FORCE].detach().cpu().numpy()
        # SevenNet's stress is the negative of ASE's, in eV/Å^3, Voigt order xx yy zz xy yz zx (its calculator's map)
        stress = -output[keys.PRED_STRESS].detach().cpu().numpy()[:, [0, 1, 2, 4, 5, 3]] * 160.21766208
        out, start = [], 0
        for i, n in enumerate(counts):
            out.append({"e": energy[i] / n, "f": forces[start : start + n], "s": voigt_6_to_full_3x3_stress(stress[i])})
            start += n
        return out

    def mp_compatible_energy(self, structure, energy_per_atom: float) -> float:
        """MP2020 corrections (GGA+U with MP's U values for oxides and fluorides of U elements) on the raw energy."""
        from harness.stability.hull import mp2020_corrected_energy_per_atom

        return mp2020_corrected_energy_per_atom(structure, energy_per_atom)

    def weights_path(self) -> Path:
        return self._path
