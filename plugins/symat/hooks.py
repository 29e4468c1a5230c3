"""Registers the ``symat`` generator (imports nothing heavy: the class is loaded lazily by the registry)."""

from harness.generator import GeneratorSpec
from harness.hookspecs import hookimpl


@hookimpl
def xtalbench_register_generators(register):
    register(
        GeneratorSpec(
            name="symat",
            version="0.2",
            target="plugins.symat.generator:SyMatGenerator",
            paper="Luo, Liu & Ji, Towards Symmetry-Aware Generation of Periodic Materials, NeurIPS 2023 (arXiv:2307.02707)",
            datasets=("mp20", "perov5", "carbon24"),
            tasks=("unconditional", "optimise"),
            description="VAE over element sets and lattice lengths/angles; coordinates by annealed Langevin "
            "dynamics on multi-graph edge-distance scores (invariant plain-torch GNN in place of SphereNet).",
        )
    )
