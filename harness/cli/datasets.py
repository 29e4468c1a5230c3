"""``bench datasets``: per dataset and split, whether its file is present and verified."""

from __future__ import annotations

from harness.cli.common import add_data_dir


def register(subparsers) -> None:
    parser = subparsers.add_parser("datasets", help="show which dataset splits are present and verified")
    add_data_dir(parser)
    parser.add_argument("--export-features", metavar="DATASET", default=None,
                        help="ship DATASET's cached test-split features as package data (harness/data/reference/)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tabulate import tabulate

    from harness.datasets import split_status
    from harness.paths import data_dir
    from harness.registry import get_registry

    root = data_dir(args.data_dir)
    if args.export_features:
        from harness.datasets import load_split
        from harness.metrics.reference import export_features

        target = export_features(load_split(args.export_features, "test", args.data_dir))
        print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB)")
        return 0
    print(f"data directory: {root}")
    rows = []
    for card in sorted(get_registry().datasets.values(), key=lambda c: c.name):
        for split in card.files:
            status = split_status(card, split, root)
            rows.append((card.name, split, status.state, status.expected_rows or "?",
                         str(status.path.relative_to(root)) if status.path else f"{card.folder}/{card.files[split].filename}",
                         status.sha256[:16] if status.sha256 else "-"))
    print(tabulate(rows, headers=("dataset", "split", "state", "rows", "file", "sha256"), tablefmt="simple", disable_numparse=True))
    return 0
