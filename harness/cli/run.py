"""``bench run``: sample a generator, evaluate under the protocol, write the run record (last line: its path)."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import add_evaluation_args, evaluation_request
from harness.protocol import TIERS
from harness.tasks import CONDITIONAL, OPTIMISE, TASKS, UNCONDITIONAL


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="sample a generator and evaluate it under the protocol")
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--task", default=UNCONDITIONAL, metavar="TASK",
                        help=f"the protocol task ({', '.join(TASKS)}; default {UNCONDITIONAL}); the generator must "
                             "declare it ('bench plugins' lists each one's tasks)")
    parser.add_argument("--target", action="append", default=[], metavar="PROPERTY=VALUE",
                        help="with --task conditional: a conditioning target, e.g. formation_energy_per_atom=-2.8 "
                             "(repeatable; default the protocol's three targets)")
    full, quick = TIERS["full"], TIERS["quick"]
    parser.add_argument("--tier", choices=tuple(TIERS), default="full",
                        help=f"full: {full.n_samples:,} samples, {full.n_relax:,} relaxed; quick: {quick.n_samples:,} "
                             f"and {quick.n_relax:,} (smoke runs)")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="a custom number of samples instead of a tier (recorded as tier 'custom', never ranked); "
                             "with --task conditional, per target (the protocol's 1,000 is tier full); with --task optimise, "
                             "the number of starts (the protocol's 100 is tier full). For these tasks --tier quick "
                             "runs 100 per target or 10 starts, recorded as tier custom")
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
    from harness.cli.common import configure_threads, fail

    refusal = _task_refusal(args)  # before torch, any model or any data
    if refusal:
        return fail(refusal)
    configure_threads(args.threads)
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
    if args.task == CONDITIONAL:
        return _run_conditional(args)
    if args.task == OPTIMISE:
        return _run_optimise(args)
    record = run_generator(request)
    _print_summary(record)
    print(record)
    return 0


def _run_conditional(args) -> int:
    """The conditional task: every target's samples relaxed on the MP hull; one record for the run."""
    from harness.cli.common import fail
    from harness.conditional import ConditionalRequest, run_conditional
    from harness.registry import get_registry
    from harness.tasks import resolve_request

    spec = get_registry().generator_spec(args.plugin)
    task_request = resolve_request(args.task, args.target, plugin=args.plugin, declared=spec.tasks,
                                   dataset=args.dataset)
    if args.relaxer != "chgnet" or (args.hull not in (None, "mp")) or not args.stability:
        return fail("the conditional task fixes its evaluation: CHGNet relaxation on the Materials Project hull "
                    "(no --relaxer, --hull or --no-stability)")
    if args.n_relax is not None:
        return fail("the conditional task relaxes every sample of every target; --n-relax does not apply")
    n = args.n_samples if args.n_samples is not None else (1_000 if args.tier == "full" else 100)
    request = ConditionalRequest(
        plugin=args.plugin, dataset=args.dataset, targets=task_request.targets, seed=args.seed, n_per_target=n,
        checkpoint=args.checkpoint, batch_size=args.batch_size, out=args.out, results_dir=args.results,
        device=args.device, workers=args.workers, progress=args.progress, data_dir=args.data_dir)
    record = run_conditional(request)
    _print_conditional(record)
    print(record)
    return 0


def _run_optimise(args) -> int:
    """The optimise task: the test split's first starts optimised, decoded and scored by the dataset's oracle."""
    from harness.cli.common import fail
    from harness.optimise import OptimiseRunRequest, oracle_for, run_optimise
    from harness.runner import RunError

    if args.relaxer != "chgnet" or (args.hull not in (None, "mp")) or not args.stability:
        return fail("the optimise task fixes its oracle per dataset (harness.tasks.ORACLES; MP-20: CHGNet relaxation "
                    "and the Materials Project references): no --relaxer, --hull or --no-stability")
    if args.n_relax is not None:
        return fail("the optimise task relaxes every valid decode; --n-relax does not apply")
    try:
        oracle_for(args.dataset)
    except RunError as exc:
        return fail(str(exc))
    n = args.n_samples if args.n_samples is not None else (100 if args.tier == "full" else 10)
    request = OptimiseRunRequest(plugin=args.plugin, dataset=args.dataset, seed=args.seed, n_starts=n,
                                 checkpoint=args.checkpoint, out=args.out, results_dir=args.results,
                                 device=args.device, workers=args.workers, progress=args.progress,
                                 data_dir=args.data_dir)
    record = run_optimise(request)
    import json

    block = json.loads(Path(record).read_text())["task"]["optimise"]
    m = block["metrics"]
    print(f"  SR5 {m['sr5']:.3f}  SR10 {m['sr10']:.3f}  SR15 {m['sr15']:.3f}  ({m['n_starts']} starts, "
          f"{m['n_failed']} with no scored decode)")
    print(record)
    return 0


def _print_conditional(record_path: Path) -> None:
    import json

    record = json.loads(Path(record_path).read_text())
    block = record["task"]["conditional"]
    for target in block["targets"]:
        m, achieved = target["metrics"], target["details"]["achieved"]["metastable"]
        median = "-" if achieved["median"] is None else f"{achieved['median']:.3f}"
        print(f"  target {target['value']:+.2f} {block['unit']}: stable {m['stable_rate']:.3f}, metastable "
              f"{m['metastable_rate']:.3f} ({m['n_relaxed']} relaxed); metastable samples' median "
              f"{block['property']} {median}")


def _task_refusal(args) -> str | None:
    """Why this run's task cannot run here (unknown task or target, a generator that does not declare the task, a
    task whose run path this xtalbench lacks), or None. Reads only the registry's metadata."""
    from harness.registry import get_registry
    from harness.tasks import TaskError, resolve_request

    spec = get_registry().generator_spec(args.plugin)
    try:
        request = resolve_request(args.task, args.target, plugin=args.plugin, declared=spec.tasks,
                                  dataset=args.dataset)
    except TaskError as exc:
        return str(exc)
    if not request.task.run_path:
        runnable = ", ".join(name for name, task in TASKS.items() if task.run_path)
        return (f"task {request.task.name!r} is not yet implemented in this version of xtalbench (its definition, "
                f"version {request.task.version}, is in docs/protocol.md, Tasks; plugin {args.plugin!r} declares "
                f"it; tasks that run: {runnable})")
    return None


def _print_summary(record_path: Path) -> None:
    import json

    record = json.loads(Path(record_path).read_text())
    shown = {k: v for k, v in record["metrics"].items() if v is not None}
    for key, value in shown.items():
        print(f"  {key:20s} {value:.4f}" if isinstance(value, float) else f"  {key:20s} {value}")
