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
