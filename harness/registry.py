"""The typed registry of generators, datasets and relaxers, filled through pluggy hooks from the ``xtalbench`` entry points."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import pluggy

from harness import hookspecs
from harness.cards import BUILTIN_CARDS, DatasetCard
from harness.generator import Generator, GeneratorSpec
from harness.relaxer import RelaxerSpec
from harness.tasks import TaskError, check_declared

ENTRY_POINT_GROUP = "xtalbench"
# Comma-separated plugin (entry-point) names to load; unset loads all. "" loads none but the built-in datasets.
PLUGINS_ENV = "XTALBENCH_PLUGINS"


class RegistryError(LookupError):
    """Unknown or duplicate names, misspelt hooks, malformed registrations."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _BuiltinDatasets:
    @hookspecs.hookimpl
    def xtalbench_register_datasets(self, register):
        for card in BUILTIN_CARDS.values():
            register(card)


# The built-in relaxers: CHGNet (the protocol's) and SevenNet-0 (optional: ``pip install xtalbench[sevennet]``).
BUILTIN_RELAXERS = (
    RelaxerSpec(name="chgnet", version="1", target="harness.stability.chgnet:ChgnetRelaxer", package="chgnet",
                model="0.3.0", description="CHGNet 0.3.0, the protocol's relaxer (Deng et al. 2023)"),
    RelaxerSpec(name="sevennet", version="1", target="harness.stability.sevennet:SevennetRelaxer",
                package="sevenn", model="7net-0",
                description="SevenNet-0 (11 Jul 2024 weights, shipped in the sevenn wheel; Park et al. 2024)"),
)


class _BuiltinRelaxers:
    @hookspecs.hookimpl
    def xtalbench_register_relaxers(self, register):
        for spec in BUILTIN_RELAXERS:
            register(spec)


@dataclass
class Registry:
    """Generators and datasets by name; built from a plugin manager, never importing a generator's module."""

    generators: dict[str, GeneratorSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetCard] = field(default_factory=dict)
    relaxers: dict[str, RelaxerSpec] = field(default_factory=dict)
    plugin_manager: pluggy.PluginManager | None = None

    def add_generator(self, spec: GeneratorSpec, distribution: str = "", distribution_version: str = "") -> None:
        if isinstance(spec, GeneratorSpec):  # a misspelt task ("optimize") fails here, loudly
            try:
                spec = replace(spec, tasks=check_declared(spec.tasks, f"generator {spec.name!r}"))
            except TaskError as exc:
                raise RegistryError(str(exc)) from None
        _add_spec(self.generators, "generator", GeneratorSpec, spec, distribution, distribution_version)

    def add_dataset(self, card: DatasetCard) -> None:
        if not isinstance(card, DatasetCard):
            raise RegistryError(f"register() takes a harness.datasets.DatasetCard, got {type(card).__name__}")
        if card.name in self.datasets:
            raise RegistryError(f"dataset {card.name!r} registered twice")
        self.datasets[card.name] = card

    def add_relaxer(self, spec: RelaxerSpec, distribution: str = "", distribution_version: str = "") -> None:
        _add_spec(self.relaxers, "relaxer", RelaxerSpec, spec, distribution, distribution_version)

    def relaxer(self, name: str) -> RelaxerSpec:
        return _installed(self.relaxers, "relaxer", name)

    def generator_spec(self, name: str) -> GeneratorSpec:
        return _installed(self.generators, "plugin", name)

    def generator(self, name: str, dataset: str) -> Generator:
        """Import and instantiate generator ``name`` for ``dataset``."""
        spec = self.generator_spec(name)
        self.dataset(dataset)
        if spec.datasets and dataset not in spec.datasets:
            raise RegistryError(f"plugin {name!r} does not support dataset {dataset!r} (supports: {', '.join(spec.datasets)})")
        return spec.load_class()(dataset)

    def dataset(self, name: str) -> DatasetCard:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets))
            raise RegistryError(f"unknown dataset {name!r}{did_you_mean(name, self.datasets)} (known: {known})") from None


def _add_spec(table: dict, kind: str, spec_type: type, spec, distribution: str, distribution_version: str) -> None:
    """Add a generator or relaxer spec under its name, with the distribution that registered it; duplicates fail."""
    if not isinstance(spec, spec_type):
        raise RegistryError(f"register() takes a {spec_type.__module__}.{spec_type.__name__}, got {type(spec).__name__}")
    if spec.name in table:
        other = table[spec.name]
        raise RegistryError(
            f"{kind} {spec.name!r} registered twice: by {other.distribution or other.target} "
            f"and by {distribution or spec.target}"
        )
    table[spec.name] = replace(spec, distribution=spec.distribution or distribution,
                               distribution_version=spec.distribution_version or distribution_version)


def _installed(table: dict, kind: str, name: str):
    """The spec registered as ``name``, or a RegistryError listing the installed ones and the closest name."""
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise RegistryError(f"unknown {kind} {name!r}{did_you_mean(name, table)} (installed: {known})") from None


def _distribution_of(plugin_manager: pluggy.PluginManager, plugin: object) -> tuple[str, str]:
    for loaded, dist in plugin_manager.list_plugin_distinfo():
        if loaded is plugin:
            return dist.project_name, dist.version
    return "", ""


def build_registry(extra_plugins: Iterable[object] = (), load_entry_points: bool = True) -> Registry:
    """A fresh plugin manager and registry: built-in datasets, the entry-point group, then ``extra_plugins``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(_BuiltinDatasets(), name="xtalbench-builtin-datasets")
    pm.register(_BuiltinRelaxers(), name="xtalbench-builtin-relaxers")
    if load_entry_points:
        wanted = os.environ.get(PLUGINS_ENV)
        if wanted is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for name in filter(None, (n.strip() for n in wanted.split(","))):
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()  # a hook function named xtalbench_* that matches no spec fails here, loudly
    except pluggy.PluginValidationError as exc:
        names = [n for n in dir(hookspecs) if n.startswith("xtalbench_")]
        raise RegistryError(f"{exc} (valid hooks: {', '.join(names)})") from exc

    registry = Registry(plugin_manager=pm)
    for impl in pm.hook.xtalbench_register_generators.get_hookimpls():
        dist, version = _distribution_of(pm, impl.plugin)
        impl.function(register=lambda spec, d=dist, v=version: registry.add_generator(spec, d, v))
    for impl in pm.hook.xtalbench_register_datasets.get_hookimpls():
        impl.function(register=registry.add_dataset)
    for impl in pm.hook.xtalbench_register_relaxers.get_hookimpls():
        dist, version = _distribution_of(pm, impl.plugin)
        impl.function(register=lambda spec, d=dist, v=version: registry.add_relaxer(spec, d, v))
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY


def set_registry(registry: Registry | None) -> None:
    """Replace (or with ``None``, reset) the process-wide registry; tests use this for isolation."""
    global _REGISTRY
    _REGISTRY = registry
