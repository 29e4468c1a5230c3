"""``bench run``: sample a generator in resumable batches, evaluate under the protocol, write the run record."""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.cards import DatasetCard
from harness.costs import Invocation
from harness.evaluation import EvaluationRequest
from harness.evaluation_types import Sample
from harness.io import atomic_write, atomic_write_json, sha256_file
from harness.protocol import TIERS, Tier, custom_tier
from harness.recording import Origin, record_run, relaxer_flag, relaxer_suffix
from harness.records import RECORD_NAME
from harness.relaxer import PROTOCOL_RELAXER
from harness.samples import make_sample


class RunError(RuntimeError):
    """A run cannot start or go on (inconsistent resume, a generator that breaks its contract)."""


@dataclass(frozen=True)
class RunRequest:
    plugin: str
    dataset: str
    tier: str = "quick"
    seed: int = 0
    checkpoint: Path | None = None
    batch_size: int = 250
    out: Path | None = None  # the run folder itself; default results/<dataset>/<plugin>/<run_id>
    results_dir: Path = Path("results")
    device: str | None = None
    evaluation: EvaluationRequest = field(default_factory=lambda: EvaluationRequest(dataset=""))
    n_samples: int | None = None  # a custom size (tier "custom", never ranked as a protocol run)
    n_relax: int | None = None  # with n_samples: the relaxed subset size


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch``: fixed by (run seed, batch number), so a resumed run draws the same samples."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


def _encode(sample: Sample) -> dict[str, Any]:
    if sample.structure is None:
        return {"index": sample.index, "error": sample.reason}
    return {"index": sample.index, "structure": sample.structure.as_dict()}


def _decode(entry: dict[str, Any]) -> Sample:
    from pymatgen.core import Structure

    if "structure" in entry:
        return make_sample(entry["index"], Structure.from_dict(entry["structure"]))
    return Sample(entry["index"], None, entry["error"])


def _generate_batch(generator, start: int, count: int, seed: int, batch_size: int) -> list[Sample]:
    """One batch from the generator; a generator that raises or returns the wrong thing yields invalid slots."""
    try:
        produced = generator.sample(count, seed, batch_size)
    except Exception as exc:
        reason = f"generator raised {type(exc).__name__}: {exc}"
        return [Sample(start + i, None, reason) for i in range(count)]
    if not isinstance(produced, (list, tuple)):
        reason = f"generator returned {type(produced).__name__}, not a list of Structures"
        return [Sample(start + i, None, reason) for i in range(count)]
    produced = list(produced)[:count]
    samples = [make_sample(start + i, s) for i, s in enumerate(produced)]
    samples += [Sample(start + i, None, "generator returned fewer samples than asked") for i in range(len(produced), count)]
    return samples


def generate(generator, n: int, seed: int, batch_size: int, work_dir: Path, progress: bool = True) -> tuple[list[Sample], float]:
    """Samples ``n`` structures in batches, each written atomically as it finishes; finished batches are reused."""
    from tqdm.auto import tqdm

    batch_dir = work_dir / "batches"
    batch_dir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    seconds = 0.0
    n_batches = (n + batch_size - 1) // batch_size
    generator.progress = progress  # a generator's own bars (SymmCD's denoising steps) follow the runner's
    with tqdm(total=n, desc=f"sampling {generator.name}", unit="sample", disable=not progress) as bar:
        for batch in range(n_batches):
            start, count = batch * batch_size, min(batch_size, n - batch * batch_size)
            path = batch_dir / f"{batch:05d}.json.gz"
            if path.exists():
                payload = json.loads(gzip.decompress(path.read_bytes()))
                batch_samples = [_decode(e) for e in payload["samples"]]
            else:
                t0 = time.perf_counter()
                batch_samples = _generate_batch(generator, start, count, batch_seed(seed, batch), batch_size)
                elapsed = time.perf_counter() - t0
                payload = {"batch": batch, "seed": batch_seed(seed, batch), "seconds": elapsed,
                           "samples": [_encode(s) for s in batch_samples]}
                blob = gzip.compress(json.dumps(payload).encode())
                atomic_write(path, lambda p, b=blob: p.write_bytes(b))
            seconds += payload["seconds"]
            samples.extend(batch_samples)
            bar.update(count)
    return samples, seconds


def run_id_for(tier: str, seed: int, checkpoint_sha: str | None, relaxer: str = PROTOCOL_RELAXER) -> str:
    return f"{tier}-seed{seed}-{(checkpoint_sha or 'noweights')[:10]}{relaxer_suffix(relaxer)}"


def _run_params(request: RunRequest, n: int, checkpoint_sha: str | None) -> dict[str, Any]:
    return {"plugin": request.plugin, "dataset": request.dataset, "n_samples": n,
            "seed": request.seed, "batch_size": request.batch_size, "checkpoint_sha256": checkpoint_sha}


def claim_run_dir(run_dir: Path, params: dict[str, Any]) -> None:
    """Write the run's settings to ``run_dir/run.json``, or check that a run already there has the same ones (a
    resume); a folder holding a run with other settings is refused (every task's run path uses this), and so is one
    another process of this machine is working on (its heartbeat in ``invocations.jsonl``). Relaxations packed into
    the folder (``bench pack``) are written back where they are missing."""
    from harness.costs import working_elsewhere

    try:
        busy = working_elsewhere(Path(run_dir))
    except ValueError as exc:  # a broken ledger line: named by file and line
        raise RunError(str(exc)) from None
    if busy:
        pids = ", ".join(str(line["pid"]) for line in busy)
        raise RunError(f"{run_dir}: another bench process (pid {pids}, its cost line updated {busy[0]['updated']}) is "
                       f"working on this run; wait for it (bench progress {run_dir}) or stop it (kill {pids}) first")
    params_path = Path(run_dir) / "run.json"
    if params_path.exists():
        previous = json.loads(params_path.read_text())
        if previous != params:
            changed = sorted(k for k in params if previous.get(k) != params[k])
            raise RunError(f"{run_dir} holds a run with other settings ({', '.join(changed)}); use another --out")
    else:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_json(params_path, params)
    from harness.stability.carry import restore

    restore(Path(run_dir))  # relaxations packed by `bench pack` (an earlier session's) are not done again


def run(request: RunRequest) -> Path:
    """Sample, evaluate and record one run; returns the path of ``record.json``. Rerunning resumes."""
    from harness.registry import get_registry

    registry = get_registry()
    card = registry.dataset(request.dataset)  # resolved once here; everything below is handed the card
    spec = registry.generator_spec(request.plugin)
    generator = registry.generator(request.plugin, card.name)
    tier = TIERS[request.tier] if request.n_samples is None else custom_tier(request.n_samples, request.n_relax)
    checkpoint = request.checkpoint or generator.default_checkpoint()
    if checkpoint is not None and not Path(checkpoint).exists():
        raise RunError(f"checkpoint {checkpoint} does not exist")
    checkpoint_sha = sha256_file(checkpoint) if checkpoint else None
    run_dir = request.out or (request.results_dir / request.dataset / request.plugin / run_id_for(tier.name, request.seed, checkpoint_sha, request.evaluation.relaxer))
    run_dir = Path(run_dir)
    if (run_dir / RECORD_NAME).exists():
        return run_dir / RECORD_NAME  # complete already: the same command gives the same record

    params = {**_run_params(request, tier.n_samples, checkpoint_sha), "tier": tier.name}
    if request.evaluation.relaxer != PROTOCOL_RELAXER:
        params["relaxer"] = request.evaluation.relaxer
    claim_run_dir(run_dir, params)

    with Invocation(run_dir, f"bench run --plugin {request.plugin} --dataset {request.dataset} --tier {tier.name} "
                             f"--seed {request.seed}{relaxer_flag(request.evaluation.relaxer)}") as invocation:
        return _run(request, card, generator, spec, tier, checkpoint, checkpoint_sha, run_dir, invocation)


def _run(request: RunRequest, card: DatasetCard, generator, spec, tier: Tier, checkpoint, checkpoint_sha,
         run_dir: Path, invocation: Invocation) -> Path:
    from harness.generator import resolve_device

    device = resolve_device(request.device)
    with invocation.phase("generation"):
        generator.load(Path(checkpoint) if checkpoint else None, device)
        samples, generation_s = generate(generator, tier.n_samples, request.seed, request.batch_size, run_dir,
                                         request.evaluation.progress)
    trained_on = generator.training_splits()
    evaluation_request = replace(request.evaluation, n_relax=tier.n_relax)
    if trained_on and evaluation_request.novelty_split in (None, "train"):
        # Novelty is judged against what the model was trained on, so a 'val'-trained model is not flattered.
        evaluation_request = replace(evaluation_request, novelty_split="+".join(trained_on))
    origin = Origin(
        plugin=spec.record_block(),
        tier=tier.name, sample_seed=request.seed, generation_s=generation_s, device=device,
        checkpoint=checkpoint_block(checkpoint, checkpoint_sha),
        sampling={**generator.sampling_settings(), "batch_size": request.batch_size, "device": device},
        model_trained_on="+".join(trained_on) if trained_on else None,
    )
    return record_run(samples, run_dir, evaluation_request, card, origin, invocation)


def portable_path(path: str | Path) -> str:
    """A path as a record may hold it: relative to the installed packages' root when inside it (a shipped
    checkpoint: ``plugins/<name>/checkpoints/...``), else relative to the working folder, else the file name."""
    path = Path(path).resolve()
    for root in (Path(__file__).resolve().parents[1], Path.cwd().resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def checkpoint_block(checkpoint: str | Path | None, sha256: str | None) -> dict[str, Any] | None:
    """The checkpoint as a record names it: its portable path, sha256 and manifest (None without a checkpoint)."""
    if checkpoint is None:
        return None
    return {"path": portable_path(checkpoint), "sha256": sha256, "manifest": _checkpoint_manifest(Path(checkpoint))}


def _checkpoint_manifest(checkpoint: Path | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    for candidate in (path.with_suffix(".manifest.json"), path.parent / f"{path.stem}.manifest.json"):
        if candidate.exists():
            return json.loads(candidate.read_text())
    return None
