"""``bench plugins``: the installed generators and relaxers, without importing any of them."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="list installed generators and relaxers")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tabulate import tabulate

    from harness.registry import get_registry
    from harness.relaxer import PROTOCOL_RELAXER

    registry = get_registry()
    rows = [
        (spec.name, spec.version, f"{spec.distribution} {spec.distribution_version}".strip() or "-",
         ", ".join(spec.datasets) or "any", ", ".join(spec.tasks), spec.paper)
        for spec in sorted(registry.generators.values(), key=lambda s: s.name)
    ]
    print(tabulate(rows, headers=("plugin", "version", "distribution", "datasets", "tasks", "paper"), tablefmt="simple",
                   disable_numparse=True))
    print()
    rows = [
        (spec.name, spec.version, spec.model, _package_status(spec.package),
         "protocol" if spec.name == PROTOCOL_RELAXER else "not ranked with protocol rows", spec.description)
        for spec in sorted(registry.relaxers.values(), key=lambda s: (s.name != PROTOCOL_RELAXER, s.name))
    ]
    print(tabulate(rows, headers=("relaxer", "adapter", "weights", "package", "rows", "description"),
                   tablefmt="simple", disable_numparse=True))
    return 0


def _package_status(package: str) -> str:
    """``name version`` of an installed package, else how to install it (asks the metadata, imports nothing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package}: not installed (pip install 'xtalbench[sevennet]')" if package == "sevenn" else f"{package}: not installed"
