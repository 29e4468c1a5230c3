"""Time-boxed training in resumable chunks, shipping the checkpoint and curves after each chunk.

Each chunk calls ``train(..., resume=True)`` for ``--chunk`` minutes, then copies ``last.pt`` (weights, optimiser
and RNG states: enough to resume elsewhere) to ``plugins/<generator>/checkpoints/<dataset>.pt`` with its manifest,
and the loss CSV/PNG to ``results/training/<generator>/<dataset>/``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from plugins._asymmetric.training import ModelKind

REPO = Path(__file__).resolve().parents[2]


def ship(run_dir: Path, dataset: str, generator: str) -> None:
    """Copy the run's resumable checkpoint, manifest and curves to their committed places."""
    from harness.io import atomic_write

    ckpt_dir = REPO / "plugins" / generator / "checkpoints"
    curves = REPO / "results" / "training" / generator / dataset
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    curves.mkdir(parents=True, exist_ok=True)
    atomic_write(ckpt_dir / f"{dataset}.pt", lambda p: shutil.copyfile(run_dir / "last.pt", p))
    atomic_write(ckpt_dir / f"{dataset}.manifest.json", lambda p: shutil.copyfile(run_dir / "manifest.json", p))
    for name in ("loss.csv", "loss.png", "manifest.json"):
        if (run_dir / name).exists():
            atomic_write(curves / name, lambda p, n=name: shutil.copyfile(run_dir / n, p))
    for path in [ckpt_dir / f"{dataset}.pt", ckpt_dir / f"{dataset}.manifest.json", *curves.iterdir()]:
        path.chmod(0o644)  # atomic_write's temporary files are private; shipped files are for everyone


def main(kind: ModelKind, argv=None, description: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m plugins.{kind.generator}.run_training",
                                     description=description or __doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--splits", required=True, help='e.g. "train" or "val+train_partial"')
    parser.add_argument("--minutes", type=float, required=True, help="total training time of this invocation")
    parser.add_argument("--chunk", type=float, default=8.0, help="minutes between shipped checkpoints")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--resume-from", type=Path, default=None, help="a last.pt (or shipped .pt) to continue")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from harness import paths
    from harness.datasets import load_split
    from plugins._asymmetric.training import train

    run_dir = args.run_dir or paths.cache_dir(f"{kind.generator}-runs/{args.dataset}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.resume_from and not (run_dir / "last.pt").exists():
        shutil.copyfile(args.resume_from, run_dir / "last.pt")
    split = load_split(args.dataset, args.splits)
    deadline = time.monotonic() + 60 * args.minutes
    while (left := (deadline - time.monotonic()) / 60) > 0.5:
        config = {"preset": args.preset, "max_minutes": min(args.chunk, left), "resume": True, "device": None}
        result = train(kind, split, config, run_dir, args.seed)
        ship(run_dir, args.dataset, kind.generator)
        print(f"shipped epoch {result.manifest['epochs']} losses {result.manifest['final_losses']}", flush=True)
        if result.manifest["epochs"] >= (kind.get_preset(args.preset, None).optim.max_epochs):
            break
    return 0
