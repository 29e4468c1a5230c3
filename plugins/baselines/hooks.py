"""Registers the baseline generators through the same entry point a third party uses."""

from harness.generator import GeneratorSpec
from harness.hookspecs import hookimpl
from plugins.baselines import __doc__ as _doc  # noqa: F401  (keeps the package importable as a plugin)


@hookimpl
def xtalbench_register_generators(register):
    register(
        GeneratorSpec(
            name="trainset",
            version="1.0",
            target="plugins.baselines.trainset:TrainsetGenerator",
            paper="baseline: resamples training structures (validity/coverage ceiling, zero novelty)",
            description="Draws structures from the training split with replacement.",
        )
    )
    register(
        GeneratorSpec(
            name="random",
            version="1.0",
            target="plugins.baselines.random_pyxtal:RandomSymmetricGenerator",
            paper="baseline: pyxtal random symmetric crystals (Fredericks et al., Comput. Phys. Commun. 2021)",
            description="pyxtal random crystals with space group and composition drawn from the training split.",
        )
    )
