"""What ``bench train`` adds around a generator's own training: stopping cleanly on a signal, and shipping the
trained checkpoint, its manifest and loss curves to the places the package and the results read them from."""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from pathlib import Path

from harness.generator import Shipment

SHIPPED_MODE = 0o644  # shipped files are for everyone, whatever the umask of the training process
CURVES_ROOT = Path("results") / "training"


def default_curves_dir(plugin: str, dataset: str) -> Path:
    """Where shipped loss curves go: ``results/training/<plugin>/<dataset>/``."""
    return CURVES_ROOT / plugin / dataset


def shipped_checkpoint(shipment: Shipment, dataset: str, checkpoints_dir: Path | None = None) -> Path:
    """The shipped checkpoint of ``dataset``: ``<checkpoints_dir>/<dataset>.pt``."""
    return Path(checkpoints_dir or shipment.checkpoint_dir) / f"{dataset}.pt"


def ship(shipment: Shipment, run_dir: Path, dataset: str, checkpoints_dir: Path | None = None,
         curves_dir: Path | None = None) -> list[Path]:
    """Copy the training folder's resumable checkpoint and manifest to ``<checkpoints_dir>/<dataset>.pt`` and
    ``.manifest.json`` (default: the generator's folder) and its curves to ``curves_dir``, each file atomically and
    world-readable; returns the paths written."""
    from harness.io import atomic_write

    run_dir = Path(run_dir)
    checkpoint = shipped_checkpoint(shipment, dataset, checkpoints_dir)
    copies = [(run_dir / shipment.checkpoint, checkpoint),
              (run_dir / shipment.manifest, checkpoint.with_name(f"{dataset}.manifest.json"))]
    for source, _ in copies:
        if not source.exists():
            raise FileNotFoundError(f"{source}: training left nothing to ship")
    if curves_dir is not None:
        copies += [(run_dir / name, Path(curves_dir) / name) for name in shipment.curves if (run_dir / name).exists()]
    for _, target in copies:
        _make_readable_dirs(target.parent)
    for source, target in copies:
        atomic_write(target, lambda p, s=source: shutil.copyfile(s, p), mode=SHIPPED_MODE)
    return [target for _, target in copies]


def continue_from(shipment: Shipment, run_dir: Path, source: Path, dataset: str,
                  checkpoints_dir: Path | None = None, curves_dir: Path | None = None) -> bool:
    """Start ``run_dir`` from the resumable checkpoint ``source`` (e.g. a shipped one) unless it holds one of its
    own (then False). Resuming from the shipped checkpoint also brings back its shipped curves, so that the curve
    goes on from the earlier epochs."""
    run_dir, source = Path(run_dir), Path(source)
    target = run_dir / shipment.checkpoint
    if target.exists():
        return False
    if not source.exists():
        raise FileNotFoundError(f"{source}: no checkpoint to resume from")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    shipped = shipped_checkpoint(shipment, dataset, checkpoints_dir)
    if curves_dir is not None and shipped.exists() and source.resolve() == shipped.resolve():
        for name in shipment.curves:
            if (Path(curves_dir) / name).exists() and not (run_dir / name).exists():
                shutil.copyfile(Path(curves_dir) / name, run_dir / name)
    return True


def _make_readable_dirs(folder: Path) -> None:
    """Create ``folder`` (and missing parents) readable by everyone; folders that exist are left as they are."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(0o755)


@contextlib.contextmanager
def stop_on_signals(log=print):
    """Yields an event that SIGTERM or SIGINT (Ctrl-C) sets, so that training stops at the next batch with a
    checkpoint, as at its time box, instead of losing the minutes since the last one; a second signal stops at once.
    The previous handlers come back on exit; outside the main thread nothing is installed."""
    from harness.signals import handling

    event = threading.Event()

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        log(f"{signal.Signals(signum).name}: stopping after this batch with a checkpoint (send it again to stop at once)")
        event.set()

    with handling((signal.SIGTERM, signal.SIGINT), handler):
        yield event
