"""``bench train``: train a generator on a dataset's training split (resumable, time-boxed, stopped cleanly by
SIGTERM or Ctrl-C); ``--ship`` copies the resumable checkpoint, its manifest and loss curves to the shipped places."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import add_data_dir


def register(subparsers) -> None:
    from harness.cli.common import add_threads

    parser = subparsers.add_parser(
        "train", help="train a generator",
        description="Train a generator (resumable; --max-minutes, SIGTERM or Ctrl-C stop it with a checkpoint); "
                    "--ship copies the result to where the package and results/ read it from.")
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--train-split", default="train",
                        help="split(s) to train on, joined by '+' (here: val+train_partial for mp20, val for carbon24)")
    parser.add_argument("--preset", default="cpu", help="model/training preset (plugins define e.g. 'paper' and 'cpu')")
    parser.add_argument("--epochs", type=int, default=None, help="stop after this many epochs")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) after this long")
    parser.add_argument("--checkpoint-minutes", type=float, default=None,
                        help="minutes between periodic checkpoints, each shipped under --ship (default: the plugin's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--out", type=Path, default=None, help="training folder (default: runs/train/<plugin>/<dataset>)")
    parser.add_argument("--fresh", dest="resume", action="store_false", help="start over instead of resuming")
    parser.add_argument("--resume-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="continue this resumable checkpoint (e.g. the shipped plugins/<plugin>/checkpoints/"
                             "<dataset>.pt) when --out holds none of its own")
    parser.add_argument("--condition", default=None, metavar="COLUMN",
                        help="train a property-conditioned model on the split's rows labelled in COLUMN (e.g. "
                             "formation_energy_per_atom; rows without a label are left out); needs a preset whose "
                             "network takes a property (SymmBFN: cpu-conditional)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="start a fresh run from this checkpoint's weights and data statistics (a fine-tune; a "
                             "conditioning input the source lacks starts at zero)")
    parser.add_argument("--ship-as", default=None, metavar="NAME",
                        help="with --ship: ship as NAME.pt / NAME.manifest.json and curves under "
                             "results/training/<plugin>/NAME (default: the dataset's name)")
    parser.add_argument("--ship", action="store_true",
                        help="after every periodic checkpoint and at the end, copy the resumable checkpoint and its "
                             "manifest to the plugin's checkpoints/<dataset>.pt and .manifest.json, and the loss "
                             "curves to results/training/<plugin>/<dataset>/ (atomically, world-readable)")
    parser.add_argument("--ship-checkpoints", type=Path, default=None, metavar="DIR",
                        help="with --ship: the folder for <dataset>.pt and .manifest.json instead of the plugin's")
    parser.add_argument("--ship-curves", type=Path, default=None, metavar="DIR",
                        help="with --ship: the folder for the loss curves (default: results/training/<plugin>/<dataset> "
                             "in the current folder, beside bench run's results)")
    add_data_dir(parser)
    add_threads(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from harness.cli.common import configure_threads, fail

    if (args.ship_checkpoints or args.ship_curves) and not args.ship:
        return fail("--ship-checkpoints and --ship-curves say where --ship copies to; add --ship")
    if args.ship_as and not args.ship:
        return fail("--ship-as names what --ship writes; add --ship")
    if args.init_from and args.resume_from:
        return fail("--init-from starts a fresh fine-tune, --resume-from continues a checkpoint: give one")
    if args.init_from and not args.init_from.exists():
        return fail(f"--init-from {args.init_from}: no such file")
    if args.resume_from and not args.resume:
        return fail("--resume-from continues a checkpoint; it cannot go with --fresh")
    configure_threads(args.threads)
    from harness.datasets import load_split
    from harness.generator import resolve_device
    from harness.registry import get_registry
    from harness.training import continue_from, default_curves_dir, ship, stop_on_signals

    generator = get_registry().generator(args.plugin, args.dataset)
    for option, given in (("condition", args.condition), ("init_from", args.init_from)):
        if given and option not in generator.train_options:
            return fail(f"{args.plugin} does not support --{option.replace('_', '-')} in training")
    shipment = generator.shipment()
    if shipment is None and (args.ship or args.resume_from):
        option = "--ship" if args.ship else "--resume-from"
        return fail(f"{args.plugin} ships no resumable checkpoint, so {option} does not apply to it")
    if args.resume_from and not args.resume_from.exists():
        return fail(f"--resume-from {args.resume_from}: no such file")
    out = args.out or Path("runs") / "train" / args.plugin / args.dataset
    shipped_name = args.ship_as or args.dataset
    curves = args.ship_curves or default_curves_dir(args.plugin, shipped_name)
    split = load_split(args.dataset, args.train_split, args.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.resume_from:
        if continue_from(shipment, out, args.resume_from, shipped_name, args.ship_checkpoints, curves):
            print(f"continuing {args.resume_from}", flush=True)
        else:
            print(f"{out / shipment.checkpoint} exists: resuming it, not {args.resume_from}", flush=True)

    def ship_now() -> None:
        shipped = ship(shipment, out, shipped_name, args.ship_checkpoints, curves)
        print(f"shipped {shipped[0]} (+{len(shipped) - 1} files)", flush=True)

    config = {"preset": args.preset, "max_epochs": args.epochs, "max_minutes": args.max_minutes,
              "device": resolve_device(args.device), "batch_size": args.batch_size, "resume": args.resume,
              "checkpoint_minutes": args.checkpoint_minutes, "on_checkpoint": ship_now if args.ship else None,
              "condition": args.condition, "init_from": args.init_from}
    result = generator.train(split, config, out, args.seed)
    if args.ship:
        with stop_on_signals():  # a signal now waits for the copies to finish (a second one stops them)
            ship_now()
    print(f"trained {args.plugin} on {args.dataset}:{split.name} ({len(split)} structures)")
    print(result.checkpoint)
    return 0
