from harness.datasets import DatasetCard, SplitFile
from harness.generator import GeneratorSpec
from harness.hookspecs import hookimpl


@hookimpl
def xtalbench_register_generators(register):
    register(GeneratorSpec(name="rocksalt-demo", version="0.0.1", target="xtalbench_demo.generator:RockSaltDemo",
                           paper="test fixture", datasets=("demo",)))


@hookimpl
def xtalbench_register_datasets(register):
    register(DatasetCard(name="demo", folder="demo",
                         files={s: SplitFile(f"{s}.csv.gz") for s in ("train", "val", "test")},
                         description="rock salts written by the test", cov_cutoffs=(0.2, 4.0)))
