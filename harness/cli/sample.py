"""``bench sample``: generate structures to an extxyz file, without evaluating them."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from harness.cli.common import add_threads

    parser = subparsers.add_parser("sample", help="generate samples to an extxyz file")
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("-n", "--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, required=True, help="output .extxyz (batches are kept beside it to resume)")
    add_threads(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from harness.cli.common import configure_threads

    configure_threads(args.threads)
    from harness.generator import resolve_device
    from harness.io import atomic_write_gzip, atomic_write_text
    from harness.registry import get_registry
    from harness.runner import generate
    from harness.samples import structures_to_extxyz

    generator = get_registry().generator(args.plugin, args.dataset)
    generator.load(args.checkpoint or generator.default_checkpoint(), resolve_device(args.device))
    work = args.out.with_name(args.out.name + ".parts")
    samples, seconds = generate(generator, args.n, args.seed, args.batch_size, work)
    text = structures_to_extxyz(samples)
    if args.out.name.endswith(".gz"):
        atomic_write_gzip(args.out, text.encode())
    else:
        atomic_write_text(args.out, text)
    built = sum(s.structure is not None for s in samples)
    print(f"{built}/{len(samples)} structures built in {seconds:.1f} s ({seconds / max(len(samples), 1):.4f} s/sample)")
    print(args.out)
    return 0
