"""The plugin registry: discovery through entry points, loud failures, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.generator import GeneratorSpec
from harness.hookspecs import hookimpl
from harness.registry import RegistryError, build_registry


def test_builtins_come_from_the_projects_own_entry_points():
    registry = build_registry()
    assert {"trainset", "random"} <= set(registry.generators)
    assert registry.generators["trainset"].distribution == "xtalbench"
    assert {"mp20", "perov5", "carbon24"} <= set(registry.datasets)


def test_duplicate_generator_name_fails_loudly():
    class Dup:
        @hookimpl
        def xtalbench_register_generators(self, register):
            register(GeneratorSpec(name="trainset", version="9", target="x:Y"))

    with pytest.raises(RegistryError, match="registered twice"):
        build_registry(extra_plugins=[Dup()])


def test_misspelt_hook_fails_loudly_and_lists_valid_hooks():
    class Typo:
        @hookimpl
        def xtalbench_register_generator(self, register):  # missing the final "s"
            pass

    with pytest.raises(RegistryError, match="xtalbench_register_generators"):
        build_registry(extra_plugins=[Typo()])


def test_registering_the_wrong_type_is_refused():
    class Wrong:
        @hookimpl
        def xtalbench_register_generators(self, register):
            register("not a spec")

    with pytest.raises(RegistryError, match="GeneratorSpec"):
        build_registry(extra_plugins=[Wrong()])


def test_unknown_names_suggest_the_closest():
    registry = build_registry()
    with pytest.raises(RegistryError, match="did you mean 'trainset'"):
        registry.generator_spec("trainsett")
    with pytest.raises(RegistryError, match="did you mean 'perov5'"):
        registry.dataset("perov-5")


def test_target_that_is_not_a_generator_is_refused():
    spec = GeneratorSpec(name="bad", version="1", target="harness.io:sha256_text")
    with pytest.raises(TypeError, match="not a harness.generator.Generator"):
        spec.load_class()


def test_a_class_whose_version_differs_from_its_registration_is_refused():
    spec = GeneratorSpec(name="trainset", version="0.9", target="plugins.baselines.trainset:TrainsetGenerator")
    with pytest.raises(TypeError, match="registered as version '0.9'"):
        spec.load_class()


def test_every_shipped_generator_registers_its_class_version():
    # records print the registered version: SymmBFN once registered 0.1.0 while its class said 0.2.0
    for spec in build_registry().generators.values():
        assert spec.load_class().version == spec.version, spec.name


def test_plugins_env_limits_what_loads(monkeypatch):
    monkeypatch.setenv("XTALBENCH_PLUGINS", "")
    assert build_registry().generators == {}


def test_listing_plugins_does_not_import_torch():
    code = (
        "import sys\n"
        "from harness.cli.main import main\n"
        "assert main(['plugins']) == 0\n"
        "heavy = [m for m in ('torch', 'chgnet', 'matminer') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "trainset" in result.stdout


@pytest.fixture
def resolutions(monkeypatch):
    """Every lookup of a dataset's name in the registry, by the function that asked."""
    from harness.registry import Registry

    asked: list[str] = []
    lookup = Registry.dataset

    def counted(self, name):
        asked.append(sys._getframe(1).f_code.co_name)
        return lookup(self, name)

    monkeypatch.setattr(Registry, "dataset", counted)
    return asked


def test_bench_evaluate_resolves_the_dataset_once_and_hands_the_card_down(tiny_dataset, tmp_path, resolutions):
    from pymatgen.io.cif import CifWriter

    from harness.cli.main import main
    from tests.conftest import tiny_structures

    samples = tmp_path / "samples.cif"
    samples.write_text("".join(str(CifWriter(s)) for s in tiny_structures()[:3]))
    assert main(["evaluate", str(samples), "--dataset", "tiny", "--out", str(tmp_path / "run"), "--workers", "1",
                 "--no-progress", "--threads", "1"]) == 0
    assert resolutions == ["run"]  # the CLI verb; the loaders, the metrics and coverage's cutoffs get the card


def test_the_dataset_hull_and_its_reference_structures_take_the_card(tiny_dataset, resolutions):
    import json

    from harness.datasets import load_split
    from harness.stability import _load_hull, reference
    from harness.stability.hull import ReferenceHull
    from harness.stability.relax import DEFAULT_SETTINGS
    from tests.conftest import TINY_CARD

    splits = reference.hull_splits(TINY_CARD)
    hashes = {s: load_split(TINY_CARD, s).sha256 for s in splits}
    key = reference._cache_key("tiny", hashes, DEFAULT_SETTINGS)
    hull = ReferenceHull("tiny", "test", [("element:Na:x", "Na", -1.0), ("test:tiny-0", "NaCl", -2.0)],
                         {"Na": {"energy_per_atom": -1.0}}, info={"dataset": "tiny", "splits": hashes})
    reference.cached_hull_path("tiny", key).parent.mkdir(parents=True, exist_ok=True)
    reference.cached_hull_path("tiny", key).write_text(json.dumps(hull.to_json()))
    loaded = _load_hull(TINY_CARD, "dataset", None, None, DEFAULT_SETTINGS, progress=False)
    assert list(loaded.structures(["test:tiny-0"])) == ["test:tiny-0"]  # read from the split the card names
    assert resolutions == []
