"""``bench plugins``: the installed generators, without importing any of them."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("plugins", help="list installed generator plugins")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tabulate import tabulate

    from harness.registry import get_registry

    registry = get_registry()
    rows = [
        (spec.name, spec.version, f"{spec.distribution} {spec.distribution_version}".strip() or "-",
         ", ".join(spec.datasets) or "any", spec.paper)
        for spec in sorted(registry.generators.values(), key=lambda s: s.name)
    ]
    print(tabulate(rows, headers=("plugin", "version", "distribution", "datasets", "paper"), tablefmt="simple", disable_numparse=True))
    return 0
