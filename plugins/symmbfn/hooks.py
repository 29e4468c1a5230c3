"""Registers SymmBFN with xtalbench (entry point ``symmbfn = "plugins.symmbfn.hooks"``); imports nothing heavy."""

from harness.generator import GeneratorSpec
from harness.hookspecs import hookimpl
from plugins.symmbfn import VERSION


@hookimpl
def xtalbench_register_generators(register):
    register(
        GeneratorSpec(
            name="symmbfn",
            version=VERSION,
            target="plugins.symmbfn.generator:SymmBFNGenerator",
            paper="Ruple, Torresi, Schopmans, Friederich: Symmetry-Aware Bayesian Flow Networks for Crystal "
            "Generation (arXiv:2502.03146)",
            datasets=("mp20", "perov5", "carbon24"),
            tasks=("unconditional", "conditional"),
            description="BFN over space group, lattice k and the asymmetric unit (atom types, coordinates, site "
            "symmetries); 100 sampling steps.",
        )
    )
