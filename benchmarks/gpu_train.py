"""Train the paper generators on one GPU inside a time budget; leave each checkpoint and its manifest in ``--out``.

    bash benchmarks/gpu_train.sh                       # on the device machine: SymmBFN, SymmCD, SyMat on MP-20, 9 min
    python benchmarks/gpu_train.py --plugins symat --datasets perov5 --minutes 5 --out $OUT

Every job is ``bench train`` (``python -m harness.cli.main train``) on the dataset's training split (README,
"Training splits": MP-20 ``val+train_recovered``, Perov-5 ``train``), time-boxed with ``--max-minutes`` and killed at
its slot's end, so the whole script ends within ``--minutes``. First the splits are parsed and (for the
asymmetric-unit models) encoded once, on every core, into the shared cache, and each job's ``model.pt`` is sized
from its preset: a job whose checkpoint would exceed ``--max-checkpoint-mib`` is refused before it spends GPU time.
``--out`` receives ``<plugin>/<dataset>/model.pt`` and ``manifest.json`` (what ``Generator.load`` reads) and
``gpu_train_summary.json`` (per job: device, epochs, wall seconds, final loss, checkpoint sha256 and bytes, git
commit, or the error), written atomically after every job. A failed job does not stop the others; the exit status
is 0 only when every job left a checkpoint. The device tool returns at most 8 files: one dataset per call.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY = "gpu_train_summary.json"
ASYMMETRIC = ("symmbfn", "symmcd")  # trained on the cached asymmetric-unit encoding of their split
# README "Training splits on these machines": what each dataset trains on where its full training split is absent.
TRAIN_SPLITS = {"mp20": "val+train_recovered", "perov5": "train", "carbon24": "val"}
# The device tool brings back files of at most 16 MiB (the project's shipped checkpoints may reach 20 MiB).
DEFAULT_MAX_CHECKPOINT_MIB = 16.0
LOG_TAIL_LINES = 15
ESTIMATE_FROM = 64  # structures whose statistics size a fresh model for the checkpoint estimate


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", default="symmbfn,symmcd,symat", help="comma-separated generators")
    parser.add_argument("--datasets", default="mp20", help="comma-separated datasets")
    parser.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget of the whole script")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                        help="where checkpoints, manifests and the summary go (default: $OUT)")
    parser.add_argument("--preset", default="paper", help="training preset of every job")
    parser.add_argument("--preset-for", action="append", default=[], metavar="PLUGIN=PRESET",
                        help="another preset for one plugin (repeatable), e.g. symmcd=cpu")
    parser.add_argument("--train-split", action="append", default=[], metavar="DATASET=SPLIT",
                        help=f"another training split for one dataset (repeatable; default {TRAIN_SPLITS})")
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--epochs", type=int, default=None, help="stop every job after this many epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="dataset folder (default: $XTALBENCH_DATA, else shared/datasets, else ../shared/datasets)")
    parser.add_argument("--concurrent", action="store_true",
                        help="run the jobs side by side on the one GPU, each for the whole budget (default: one after "
                             "another, the budget split between them)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per job (default: cores / jobs at once)")
    parser.add_argument("--workers", type=int, default=None, help="processes that encode the splits (default: cores)")
    parser.add_argument("--reserve-seconds", type=float, default=45.0,
                        help="of each job's slot, kept for starting (imports, cached data, CUDA) and the final save")
    parser.add_argument("--max-checkpoint-mib", type=float, default=DEFAULT_MAX_CHECKPOINT_MIB)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="training folders (last.pt, curves, logs); default: a fresh temporary folder")
    parser.add_argument("--git-commit", default=None,
                        help="the commit to record where the checkout has no .git (default: git's own answer)")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("no --out given and $OUT is unset")
    return args


def pairs(items: list[str], what: str) -> dict[str, str]:
    """``["a=b", ...]`` as a dict; a clear error for an item without '='."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"gpu_train: {what} {item!r} is not NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def torch_device_name(device: str) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``) or the CPU's; a clear stop when CUDA is absent."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} but torch {torch.__version__} sees no CUDA device "
                               f"(torch.cuda.is_available() is False; built for CUDA {torch.version.cuda})")
        return torch.cuda.get_device_name(torch.device(device))
    from harness.provenance import cpu_name

    return cpu_name()


def resolve_data_dir(explicit: Path | None, needed: dict[str, list[str]]) -> Path:
    """The first of --data-dir, $XTALBENCH_DATA, shared/datasets, ../shared/datasets (relative to the repository)
    that exists; an error naming every place tried, or every split file missing from the chosen one."""
    from harness.datasets import get_card, split_path

    if explicit:
        tried = [("--data-dir", explicit)]
    else:
        env = os.environ.get("XTALBENCH_DATA")
        tried = [("$XTALBENCH_DATA", Path(env))] if env else []
        tried += [("shared/datasets", REPO / "shared" / "datasets"), ("../shared/datasets", REPO.parent / "shared" / "datasets")]
    found = next((path.expanduser().resolve() for _, path in tried if path.expanduser().is_dir()), None)
    if found is None:
        places = "; ".join(f"{label}: {path}" for label, path in tried)
        raise FileNotFoundError(f"no dataset folder found (tried {places}); pass --data-dir, set $XTALBENCH_DATA, or "
                                "copy ../shared/datasets into the checkout's shared/datasets so it travels")
    missing = []
    for dataset, splits in needed.items():
        card = get_card(dataset)
        for split in splits:
            if split not in card.files:
                missing.append(f"{dataset} has no split {split!r} (it has {', '.join(card.files)})")
            elif split_path(card, split, found) is None:
                missing.append(f"{dataset}:{split} ({found / card.folder / card.files[split].filename})")
    if missing:
        raise FileNotFoundError(f"missing from {found}: " + "; ".join(missing))
    return found


def saved_bytes(payload: dict) -> int:
    """The size of ``torch.save(payload)``."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()


def estimate_checkpoint_bytes(plugin: str, preset: str, split) -> int | None:
    """About what ``model.pt`` of ``plugin`` at ``preset`` will weigh: the payload of a fresh model whose data
    statistics come from the split's first structures (the manifest adds a few kB); None for a plugin this script
    cannot size."""
    import importlib

    if plugin in ASYMMETRIC:
        from plugins._asymmetric import RepresentationError, encode, pack
        from plugins._asymmetric.training import build_model, model_payload

        crystals = []
        for structure in split.structures[:ESTIMATE_FROM]:
            try:
                crystals.append(encode(structure))
            except RepresentationError:
                continue
        kind = importlib.import_module(f"plugins.{plugin}.training").KIND
        chosen = kind.get_preset(preset, None)
        model = build_model(kind, chosen, kind.make_stats(pack(crystals)), seed=0)
        return saved_bytes(model_payload(kind, model, chosen, {}))
    if plugin == "symat":
        from plugins.symat import presets
        from plugins.symat.training import build_model, model_payload

        max_atoms = max(len(s) for s in split.structures)
        return saved_bytes(model_payload(build_model(presets.resolve(preset), max_atoms, [0.0] * 6, [1.0] * 6, seed=0)))
    return None


def prepare(jobs: list[dict], data_dir: Path, workers: int, max_bytes: int) -> None:
    """Parse every split once into the cache the jobs read; refuse a job whose checkpoint would be over
    ``max_bytes``; encode each split that an asymmetric-unit job will train on, on ``workers`` processes, into the
    cache too. A job whose split or preset fails gets its ``status`` and ``error``; the others go on."""
    from harness.datasets import load_split
    from plugins._asymmetric import convert_split

    splits = {}
    for job in jobs:
        key = (job["dataset"], job["train_split"])
        try:
            if key not in splits:
                started = time.perf_counter()
                splits[key] = load_split(*key, data_dir)
                print(f"parsed {key[0]}:{key[1]} ({len(splits[key])} structures) in "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
            job["estimated_checkpoint_bytes"] = estimate = estimate_checkpoint_bytes(job["plugin"], job["preset"],
                                                                                     splits[key])
        except Exception as exc:  # a split that does not load, a preset that does not exist: this job's failure
            job.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            continue
        if estimate is not None and estimate > max_bytes:
            job["status"] = "refused"
            job["error"] = (f"preset {job['preset']!r} of {job['plugin']} makes a model.pt of about {estimate / 2**20:.1f} "
                            f"MiB, over the {max_bytes / 2**20:g} MiB cap (--max-checkpoint-mib); choose a smaller "
                            f"preset with --preset-for {job['plugin']}=NAME")
    for key in {(j["dataset"], j["train_split"]) for j in jobs if j["plugin"] in ASYMMETRIC and not j.get("error")}:
        started = time.perf_counter()
        try:
            converted = convert_split(splits[key], workers=workers)
        except Exception as exc:
            for job in jobs:
                if (job["dataset"], job["train_split"]) == key and job["plugin"] in ASYMMETRIC:
                    job.update(status="failed", error=f"encoding the split: {type(exc).__name__}: {exc}")
            continue
        print(f"encoded {key[0]}:{key[1]} ({len(converted.valid())} of {len(splits[key])}) with {workers} processes "
              f"in {time.perf_counter() - started:.0f} s", flush=True)


def train_command(job: dict, args, data_dir: Path, max_minutes: float, threads: int) -> list[str]:
    """The ``bench train`` command line of one job."""
    command = [sys.executable, "-m", "harness.cli.main", "train", "--plugin", job["plugin"], "--dataset", job["dataset"],
               "--train-split", job["train_split"], "--preset", job["preset"], "--device", args.device,
               "--max-minutes", f"{max_minutes:.3f}", "--out", str(job["run_dir"]), "--fresh",
               "--data-dir", str(data_dir), "--seed", str(args.seed), "--threads", str(threads)]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    return command


def start(job: dict, command: list[str]) -> subprocess.Popen:
    """``command`` in its own process group (so that a kill reaches its children, and one that kills this script's
    session still reaches it), output to the job's log."""
    job["run_dir"].mkdir(parents=True, exist_ok=True)
    job["log"] = job["run_dir"] / "train.log"
    job["command"] = " ".join(["bench", *command[3:]])
    print(f"start {job['plugin']}/{job['dataset']}: {job['command']}", flush=True)
    job["started"] = time.monotonic()
    with open(job["log"], "w") as log:
        group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, **group)


def kill(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL 10 s later if it still runs."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def finish(job: dict, process: subprocess.Popen, deadline: float) -> None:
    """Wait for the job until ``deadline`` (monotonic), then kill its process group; record how it ended."""
    try:
        code = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        kill(process)
        code = None
        job["error"] = ("killed at its slot's end (on SIGTERM bench train saves a checkpoint at its next batch; "
                        "SIGKILL 10 s later leaves the last periodic one, if any)")
    job["wall_seconds"] = round(time.monotonic() - job["started"], 1)
    job["exit_code"] = code
    if code not in (0, None):
        job["error"] = f"bench train exited with status {code}"
    lines = job["log"].read_text(errors="replace").splitlines()
    job["log_tail"] = [line[-300:] for line in lines if "\r" not in line][-LOG_TAIL_LINES:]
    print(f"end {job['plugin']}/{job['dataset']}: exit {code} after {job['wall_seconds']} s", flush=True)


def collect(job: dict, out: Path, max_bytes: int) -> None:
    """Copy the job's model.pt and manifest.json to ``out/<plugin>/<dataset>/`` when within the size cap."""
    import json

    from harness.io import atomic_write, sha256_file

    model, manifest = job["run_dir"] / "model.pt", job["run_dir"] / "manifest.json"
    if not (model.exists() and manifest.exists()):
        job["error"] = job.get("error") or "bench train left no model.pt and manifest.json"
        return
    size = model.stat().st_size
    job["checkpoint"] = {"bytes": size, "sha256": sha256_file(model)}
    meta = json.loads(manifest.read_text())
    losses = meta.get("final_losses") or {}
    job.update(epochs=meta.get("epochs"), train_seconds=meta.get("wall_seconds"), final_loss=losses.get("total"),
               final_losses=losses)
    if size > max_bytes:
        job["error"] = f"model.pt is {size} bytes, over the {max_bytes} byte cap (--max-checkpoint-mib); not copied"
        print(f"gpu_train: CHECKPOINT TOO LARGE: {job['plugin']}/{job['dataset']}: {job['error']}", file=sys.stderr)
        return
    target = out / job["plugin"] / job["dataset"]
    atomic_write(target / "model.pt", lambda p: shutil.copyfile(model, p))
    atomic_write(target / "manifest.json", lambda p: shutil.copyfile(manifest, p))
    job["checkpoint"]["path"] = f"{job['plugin']}/{job['dataset']}/model.pt"
    job["manifest"] = f"{job['plugin']}/{job['dataset']}/manifest.json"


PUBLIC_KEYS = ("plugin", "dataset", "train_split", "preset", "device", "device_name", "status", "error", "epochs",
               "wall_seconds", "train_seconds", "max_minutes", "final_loss", "final_losses", "checkpoint", "manifest",
               "estimated_checkpoint_bytes", "git_commit", "exit_code", "command", "log_tail")


def job_status(job: dict) -> str:
    """refused (by the size preflight), failed, killed (at its slot's end), ok, or pending (not yet run)."""
    if job.get("status"):
        return job["status"]
    if "wall_seconds" not in job:
        return "pending"
    if not job.get("error"):
        return "ok"
    return "killed" if job.get("exit_code") is None else "failed"


def write_summary(out: Path, header: dict, jobs: list[dict], started: float) -> None:
    from harness.io import atomic_write_json

    rows = [{key: job.get(key) for key in PUBLIC_KEYS} | {"status": job_status(job)} for job in jobs]
    summary = header | {"wall_seconds": round(time.monotonic() - started, 1), "ok": all(r["status"] == "ok" for r in rows),
                        "jobs": rows}
    atomic_write_json(out / SUMMARY, summary)


def main(argv=None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    deadline = started + 60 * args.minutes - 10  # the last seconds copy, hash and write the summary
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="xtalbench-gpu-train-"))).resolve()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import result_header

    from harness.provenance import commit_label

    presets, splits = pairs(args.preset_for, "--preset-for"), TRAIN_SPLITS | pairs(args.train_split, "--train-split")
    plugins = [p.strip() for p in args.plugins.split(",") if p.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    commit = args.git_commit or commit_label()
    jobs = [{"plugin": p, "dataset": d, "train_split": splits.get(d, "train"), "preset": presets.get(p, args.preset),
             "device": args.device, "git_commit": commit, "run_dir": work / p / d} for d in datasets for p in plugins]
    max_bytes = int(args.max_checkpoint_mib * 2**20)
    header = result_header("gpu_train", argv) | {"budget_minutes": args.minutes, "device": args.device,
                                                 "max_checkpoint_bytes": max_bytes, "work_dir": str(work)}
    try:
        import torch

        header |= {"torch_version": torch.__version__, "cuda_available": torch.cuda.is_available()}
        device_name = torch_device_name(args.device)
        header["device_name"] = device_name
        data_dir = resolve_data_dir(args.data_dir, {d: splits.get(d, "train").split("+") for d in datasets})
        header["data_dir"] = str(data_dir)
        workers = args.workers or os.cpu_count() or 1
        prepare(jobs, data_dir, workers, max_bytes)
    except Exception as exc:  # nothing can train: say why in the summary and on stderr
        for job in jobs:
            job.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        write_summary(out, header, jobs, started)
        print(f"gpu_train: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for job in jobs:
        job["device_name"] = device_name
    runnable = [job for job in jobs if not job.get("error")]
    at_once = len(runnable) if args.concurrent else 1
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(at_once, 1))
    write_summary(out, header, jobs, started)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that running jobs are killed on the way out
    queue, running = list(runnable), []
    try:
        while queue:
            batch, queue = queue[:at_once], queue[at_once:]
            slots_left = 1 + -(-len(queue) // at_once)  # this batch and the ones after it share what is left
            slot_end = time.monotonic() + (deadline - time.monotonic()) / slots_left
            for job in batch:
                job["max_minutes"] = round(max(slot_end - time.monotonic() - args.reserve_seconds, 5.0) / 60, 3)
                running.append((job, start(job, train_command(job, args, data_dir, job["max_minutes"], threads))))
            while running:
                job, process = running[0]
                finish(job, process, slot_end)
                running.pop(0)
                collect(job, out, max_bytes)
                write_summary(out, header, jobs, started)
    finally:
        for _, process in running:
            kill(process)
        signal.signal(signal.SIGTERM, previous)
        write_summary(out, header, jobs, started)
    for job in jobs:
        state = "ok" if not job.get("error") else f"FAILED: {job['error']}"
        print(f"{job['plugin']}/{job['dataset']} ({job['preset']}): epochs {job.get('epochs')}, final loss "
              f"{job.get('final_loss')}, {job.get('checkpoint', {}).get('bytes')} bytes; {state}", flush=True)
    print(out / SUMMARY)
    return 0 if all(not job.get("error") for job in jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
