"""``bench evaluate FILE``: the protocol on a sample file in any format ``harness.sample_formats`` reads."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from harness.cli.common import add_evaluation_args, evaluation_request
from harness.protocol import SAMPLE_FILE_N_RELAX
from harness.sample_formats import FORMATS


def register(subparsers) -> None:
    formats = "\n".join(f"  {name:14} " + what.replace("\n", "\n" + " " * 17) for name, what in FORMATS.items())
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a file of samples under the protocol",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"sample formats (by file name, else by content; any of them gzipped, .gz):\n{formats}\n"
               "  else: whatever ASE's or pymatgen's readers read (format ase:<name> or pymatgen)\n"
               "A bad entry (row, frame, block, file) is an invalid sample named by its position.")
    parser.add_argument("samples", type=Path, help="a sample file or folder (formats below)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--name", default=None, help="name of the run's generator (default: the file's stem)")
    parser.add_argument("--external", type=Path, default=None,
                        help="external-set manifest (JSON) describing a published sample set; found by hash if omitted")
    parser.add_argument("--n-relax", type=int, default=SAMPLE_FILE_N_RELAX,
                        help=f"size of the relaxed subset with --stability (default {SAMPLE_FILE_N_RELAX})")
    parser.add_argument("--generation-seconds", type=float, default=None,
                        help="wall time the samples took to generate, if known (fills the cost keys)")
    parser.add_argument("--out", type=Path, default=None, help="run folder")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root")
    add_evaluation_args(parser, stability_default=False)
    parser.set_defaults(func=run)


def run(args) -> int:
    from harness.cli.common import configure_threads

    configure_threads(args.threads)
    from harness.cli.common import fail
    from harness.evaluate_file import evaluate_file, samples_digest
    from harness.registry import get_registry

    card = get_registry().dataset(args.dataset)  # the one place this command resolves the dataset's name
    external = _external_manifest(args)
    if external is not None:
        if external.dataset != args.dataset:
            return fail(f"{args.samples}: the manifest says dataset {external.dataset!r}, not {args.dataset!r}")
        if args.samples.is_file() and samples_digest(args.samples) != external.sha256:
            return fail(f"{args.samples}: sha256 differs from the manifest's ({external.sha256[:16]}...): not the posted file")
    request = replace(evaluation_request(args), n_relax=args.n_relax)
    record = evaluate_file(
        args.samples, request, card, name=args.name, external=external.as_json() if external else None,
        results_dir=args.results, out=args.out, generation_s=args.generation_seconds,
    )
    from harness.cli.run import _print_summary

    _print_summary(record)
    print(record)
    return 0


def _external_manifest(args):
    from harness import external

    if args.external:
        return external.load_manifest(args.external)
    return external.find_manifest(args.samples)
