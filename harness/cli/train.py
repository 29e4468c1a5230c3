"""``bench train``: train a generator on a dataset's training split (resumable)."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import add_data_dir


def register(subparsers) -> None:
    from harness.cli.common import add_threads

    parser = subparsers.add_parser("train", help="train a generator")
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--train-split", default="train",
                        help="split(s) to train on, joined by '+' (here: val+train_partial for mp20, val for carbon24)")
    parser.add_argument("--preset", default="cpu", help="model/training preset (plugins define e.g. 'paper' and 'cpu')")
    parser.add_argument("--epochs", type=int, default=None, help="stop after this many epochs")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) after this long")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--out", type=Path, default=None, help="training folder (default: runs/train/<plugin>/<dataset>)")
    parser.add_argument("--fresh", dest="resume", action="store_false", help="start over instead of resuming")
    add_data_dir(parser)
    add_threads(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from harness.cli.common import configure_threads

    configure_threads(args.threads)
    from harness.datasets import load_split
    from harness.generator import resolve_device
    from harness.registry import get_registry

    generator = get_registry().generator(args.plugin, args.dataset)
    split = load_split(args.dataset, args.train_split, args.data_dir)
    out = args.out or Path("runs") / "train" / args.plugin / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    config = {"preset": args.preset, "max_epochs": args.epochs, "max_minutes": args.max_minutes,
              "device": resolve_device(args.device), "batch_size": args.batch_size, "resume": args.resume}
    result = generator.train(split, config, out, args.seed)
    print(f"trained {args.plugin} on {args.dataset}:{split.name} ({len(split)} structures)")
    print(result.checkpoint)
    return 0
