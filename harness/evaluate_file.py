"""``bench evaluate``: the protocol applied to a sample file a user brings (or a published set with a manifest)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.cards import DatasetCard
from harness.costs import Invocation
from harness.evaluation import EvaluationRequest
from harness.io import sha256_file
from harness.protocol import CUSTOM_TIER
from harness.recording import Origin, record_run, relaxer_flag, relaxer_suffix
from harness.records import RECORD_NAME
from harness.sample_formats import folder_members, format_suffixes, read_sample_file


def samples_digest(path: Path) -> str:
    """sha256 of a sample file, or of the names and bytes of the files a folder's samples are read from, in name
    order (for a folder of CIFs alone, the same digest as before other formats were read)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for name, file in folder_members(path):
        digest.update(name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def evaluate_file(
    path: Path, request: EvaluationRequest, card: DatasetCard, *, name: str | None = None,
    external: dict[str, Any] | None = None, results_dir: Path = Path("results"), out: Path | None = None,
    generation_s: float | None = None,
) -> Path:
    """Evaluate the samples in ``path`` against ``card`` (the request's dataset, resolved by the caller), relaxing
    ``request.n_relax`` of them with stability, and write an ordinary run record; returns the record path."""
    path = Path(path)
    digest = samples_digest(path)
    plugin_name = f"external-{external['name']}" if external else (name or _stem(path))
    run_id = f"{CUSTOM_TIER}-{digest[:12]}-seed{request.eval_seed}{relaxer_suffix(request.relaxer)}"
    run_dir = Path(out) if out else results_dir / request.dataset / plugin_name / run_id
    if (run_dir / RECORD_NAME).exists():
        return run_dir / RECORD_NAME
    sample_file = read_sample_file(path)
    record_external = None
    if external:
        record_external = {k: external[k] for k in ("model", "paper", "source", "status", "caveats") if k in external}
        record_external["manifest"] = external.get("name")
    model_trained_on = external.get("trained_on") if external else None
    origin = Origin(
        plugin={"name": plugin_name, "version": str(external.get("version", "")) if external else "",
                "distribution": None, "distribution_version": None},
        tier=CUSTOM_TIER, generation_s=generation_s,
        sampling={"source_file": path.name, "source_format": sample_file.format,
                  **({"source_members": sample_file.members} if sample_file.members else {}),
                  "request": _jsonable(request)},
        model_trained_on=model_trained_on, external=record_external, samples_sha256=digest, run_id=run_id,
    )
    command = f"bench evaluate {path.name} --dataset {request.dataset}{relaxer_flag(request.relaxer)}"
    with Invocation(run_dir, command) as invocation:
        return record_run(sample_file.samples, run_dir, request, card, origin, invocation)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in format_suffixes():
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _jsonable(request: EvaluationRequest) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(request).items() if k not in ("progress",)}
