"""``bench run``: sample a generator, evaluate under the protocol, write the run record (last line: its path)."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import add_evaluation_args, evaluation_request
from harness.protocol import TIERS


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="sample a generator and evaluate it under the protocol")
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--dataset", required=True)
    full, quick = TIERS["full"], TIERS["quick"]
    parser.add_argument("--tier", choices=tuple(TIERS), default="full",
                        help=f"full: {full.n_samples:,} samples, {full.n_relax:,} relaxed; quick: {quick.n_samples:,} "
                             f"and {quick.n_relax:,} (smoke runs)")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="a custom number of samples instead of a tier (recorded as tier 'custom', never ranked)")
    parser.add_argument("--n-relax", type=int, default=None, help="with --n-samples: relaxed subset size (default n/10)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--checkpoint", type=Path, default=None, help="weights (default: the plugin's shipped ones)")
    parser.add_argument("--batch-size", type=int, default=250, help="samples per batch (also the resume granularity)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: results/<dataset>/<plugin>/<run_id>)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root")
    add_evaluation_args(parser, stability_default=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from harness.cli.common import configure_threads

    configure_threads(args.threads)
    from harness.cli.common import fail
    from harness.runner import RunRequest
    from harness.runner import run as run_generator

    if args.batch_size < 1 or (args.n_samples is not None and args.n_samples < 1):
        return fail("--batch-size and --n-samples must be >= 1")
    request = RunRequest(
        plugin=args.plugin, dataset=args.dataset, tier=args.tier, seed=args.seed, checkpoint=args.checkpoint,
        batch_size=args.batch_size, out=args.out, results_dir=args.results, device=args.device,
        evaluation=evaluation_request(args),
        n_samples=args.n_samples, n_relax=args.n_relax,
    )
    record = run_generator(request)
    _print_summary(record)
    print(record)
    return 0


def _print_summary(record_path: Path) -> None:
    import json

    record = json.loads(Path(record_path).read_text())
    shown = {k: v for k, v in record["metrics"].items() if v is not None}
    for key, value in shown.items():
        print(f"  {key:20s} {value:.4f}" if isinstance(value, float) else f"  {key:20s} {value}")
