"""Registers SymmCD with xtalbench (entry point ``symmcd = "plugins.symmcd.hooks"``); imports nothing heavy."""

from harness.generator import GeneratorSpec
from harness.hookspecs import hookimpl
from plugins.symmcd import VERSION


@hookimpl
def xtalbench_register_generators(register):
    register(
        GeneratorSpec(
            name="symmcd",
            version=VERSION,
            target="plugins.symmcd.generator:SymmCDGenerator",
            paper="Levy et al.: SymmCD: Symmetry-Preserving Crystal Generation with Diffusion Models (ICLR 2025)",
            datasets=("mp20", "perov5", "carbon24"),
            description="Diffusion over space group-constrained lattice k and the asymmetric unit (coordinates, atom "
            "types, site symmetries); 1,000 steps.",
        )
    )
