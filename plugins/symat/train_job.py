"""Background training entry point: ``python -m plugins.symat.train_job --dataset perov5 --split train ...``.

Runs with one torch thread (the machine is shared), copies the checkpoint and manifest into
``plugins/symat/checkpoints/`` and the loss curves into ``results/training/symat/<dataset>/`` at every save.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", required=True, help='e.g. "train" or "val+train_partial"')
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--resume-from", type=Path, default=None, help="e.g. plugins/symat/checkpoints/mp20.pt"
    )
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from harness.datasets import load_split
    from harness.generator import resolve_device
    from plugins.symat.training import train

    split = load_split(args.dataset, args.split)
    config = {
        "preset": args.preset,
        "max_epochs": args.max_epochs,
        "max_minutes": args.max_minutes,
        "device": resolve_device(None),
        "batch_size": args.batch_size,
        "resume": args.resume,
        "resume_from": str(args.resume_from) if args.resume_from else None,
        "checkpoint_minutes": args.checkpoint_minutes,
        "export_dir": str(REPO / "plugins" / "symat" / "checkpoints"),
        "curves_dir": str(REPO / "results" / "training" / "symat" / args.dataset),
    }
    result = train(split, config, args.out, args.seed)
    print(
        f"done: {result.checkpoint} epochs={result.manifest['epochs']} losses={result.manifest['final_losses']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
