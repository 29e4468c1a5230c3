"""Training an asymmetric-unit generator (SymmBFN, SymmCD): epochs over the converted split, time-boxed,
checkpointed every few minutes, resumable.

A model family describes itself with a :class:`ModelKind` (how to build the model and its statistics, its presets,
its loss components); :func:`train` does the rest. ``out_dir`` receives ``last.pt`` (everything needed to resume),
``model.pt`` (weights + preset + data statistics, the shipped format), ``manifest.json``, ``loss.csv`` (one row per
epoch, one column per loss component) and ``loss.png``.
"""

from __future__ import annotations

import csv
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.provenance import commit_label
from harness.schemas import CHECKPOINT_MANIFEST_VERSION
from harness.training import stop_on_signals
from plugins._asymmetric.dataset import CODE_VERSION, PackedCrystals, convert_split, pack


@dataclass(frozen=True)
class ModelKind:
    """What the shared training loop needs to know about one model family."""

    generator: str  # the plugin name, e.g. "symmbfn"
    checkpoint_format: str  # written into every checkpoint and checked on load
    components: tuple[str, ...]  # loss keys; "total" first, the one that is optimised
    get_preset: Callable[[str, int | None], Any]  # (name, batch size or None) -> preset with .name .optim .to_dict()
    preset_from_dict: Callable[[dict], Any]
    make_stats: Callable[[PackedCrystals], Any]  # what the model learns from the data besides weights
    stats_to_dict: Callable[[Any], dict]
    stats_from_dict: Callable[[dict], Any]
    build: Callable[[Any, Any], torch.nn.Module]  # (preset, stats) -> model (its ``stats`` attribute holds them)
    make_batch: Callable[[PackedCrystals, Any, str], Any]  # (packed rows, stats, device) -> the model's batch


def build_model(kind: ModelKind, preset, stats, seed: int) -> torch.nn.Module:
    """A freshly initialised model; the initialisation is seeded without touching global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return kind.build(preset, stats)


def subset(packed: PackedCrystals, index: np.ndarray) -> PackedCrystals:
    """Rows ``index`` of a packed set, trimmed to the largest representative count among them."""
    n = max(int(packed.mask[index].sum(1).max()), 1)
    return PackedCrystals(packed.space_group[index], packed.k[index], packed.atomic_numbers[index, :n],
                          packed.frac_coords[index, :n], packed.site_ops[index, :n], packed.mask[index, :n],
                          None if packed.prop is None else packed.prop[index])


def size_bucketed_batches(packed: PackedCrystals, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random batches of crystals with similar representative counts (less padding in the N x N pair tensor)."""
    sizes = packed.mask.sum(1)
    order = np.lexsort((rng.random(len(sizes)), sizes))  # by size, ties in random order
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def model_payload(kind: ModelKind, model, preset, manifest: dict) -> dict:
    """The shipped format: weights, preset, data statistics and manifest."""
    return {"format": kind.checkpoint_format, "preset": preset.to_dict(), "stats": kind.stats_to_dict(model.stats),
            "state_dict": model.state_dict(), "manifest": manifest}


def load_model_file(kind: ModelKind, path: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, manifest) from a ``model.pt``/``last.pt``/shipped checkpoint."""
    payload = torch.load(path, map_location=device, weights_only=False)
    if payload.get("format") != kind.checkpoint_format:
        raise ValueError(f"{path}: not a {kind.generator} checkpoint (format {payload.get('format')!r})")
    preset = kind.preset_from_dict(payload["preset"])
    model = kind.build(preset, kind.stats_from_dict(payload["stats"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload.get("manifest", {})


def transfer_weights(source: torch.nn.Module, target: torch.nn.Module) -> dict[str, str]:
    """Copy ``source``'s weights into ``target`` (a fine-tune's starting point); returns what happened to each
    tensor of ``target`` that was not copied as it is. A tensor whose input width grew (the conditioning input of
    a network that gained a property embedding) keeps the old columns and gets zeros in the new ones, so the
    fine-tune starts from exactly the source's function; any other shape difference is refused."""
    theirs = source.state_dict()
    mine = target.state_dict()
    notes = {}
    for name, tensor in mine.items():
        if name not in theirs:
            raise ValueError(f"the source checkpoint has no {name!r}: its network is not this one's")
        old = theirs[name]
        if old.shape == tensor.shape:
            mine[name] = old.clone()
        elif old.dim() == 2 and old.shape[0] == tensor.shape[0] and old.shape[1] < tensor.shape[1]:
            grown = torch.zeros_like(tensor)
            grown[:, : old.shape[1]] = old
            mine[name] = grown
            notes[name] = f"input width {old.shape[1]} -> {tensor.shape[1]}, new columns zero"
        else:
            raise ValueError(f"{name}: shape {tuple(old.shape)} in the source, {tuple(tensor.shape)} here")
    extra = sorted(set(theirs) - set(mine))
    if extra:
        raise ValueError(f"the source checkpoint has tensors this network lacks: {', '.join(extra[:5])}")
    target.load_state_dict(mine)
    return notes


def conditioning_of(preset) -> bool:
    """Whether a preset's network takes a property (SymmBFN's ``property_conditioning``; SymmCD has none)."""
    return bool(getattr(preset.network, "property_conditioning", False))


def labelled_crystals(converted, split, condition: str) -> tuple[list, np.ndarray, dict]:
    """The encoded crystals of ``split`` that carry a finite ``condition`` label, their labels, and counts."""
    from harness.datasets import read_split_column

    labels = read_split_column(split, condition)
    keep = [i for i, crystal in enumerate(converted.crystals) if crystal is not None and np.isfinite(labels[i])]
    info = {"property": condition, "labels": "dataset_dft", "column": condition, "labelled_crystals": len(keep),
            "unlabelled_skipped": int(sum(1 for c, v in zip(converted.crystals, labels) if c is not None
                                          and not np.isfinite(v))),
            "label_mean": float(labels[keep].mean()) if keep else None,
            "label_min": float(labels[keep].min()) if keep else None,
            "label_max": float(labels[keep].max()) if keep else None}
    return [converted.crystals[i] for i in keep], labels[keep], info


def refreshed_stats(kind: ModelKind, saved, fresh, path: Path):
    """The data statistics of a resumed run: the saved ones must equal those recomputed from the data (else the
    checkpoint was trained on other data and is refused); fields added since it was saved come from the data."""
    old, new = kind.stats_to_dict(saved), kind.stats_to_dict(fresh)
    differ = [key for key, value in old.items() if not _agrees(value, new.get(key))]
    if differ:
        raise ValueError(f"{path}: its data statistics ({', '.join(differ)}) differ from this split's; it was "
                         "trained on other data (start over with --fresh, or train into another --out)")
    return fresh


def _agrees(old, new) -> bool:
    """``old`` equals ``new`` where ``old`` says anything (``None`` fields of ``old`` are fields it predates)."""
    if old is None:
        return True
    if isinstance(old, dict):
        return isinstance(new, dict) and all(_agrees(v, new.get(k)) for k, v in old.items())
    if isinstance(old, list | tuple):
        return isinstance(new, list | tuple) and len(old) == len(new) and all(map(_agrees, old, new))
    return old == new


def write_curves(out_dir: Path, history: list[dict], components: tuple[str, ...]) -> None:
    """``loss.csv`` and ``loss.png`` from the per-epoch history."""
    from harness.io import atomic_write

    fields = ["epoch", "wall_seconds", "lr", *components]

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows({k: row[k] for k in fields} for row in history)

    atomic_write(out_dir / "loss.csv", write_csv)
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [row["epoch"] for row in history]
    for name in components:
        ax.plot(epochs, [row[name] for row in history], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (epoch mean)")
    ax.legend()
    fig.tight_layout()
    atomic_write(out_dir / "loss.png", lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)


def train(kind: ModelKind, split, config: dict[str, Any], out_dir: Path, seed: int, log=print):
    """Train on a harness ``Split``; returns ``harness.generator.TrainResult`` (checkpoint = ``model.pt``).

    ``config``: ``preset`` (default "cpu"), ``batch_size``, ``device``, ``max_epochs``, ``max_minutes`` (time box of
    this call), ``resume`` (continue from ``out_dir/last.pt`` when it exists), ``checkpoint_minutes`` (default: the
    preset's), ``on_checkpoint`` (called with no arguments after each periodic checkpoint), ``condition`` (a split
    column, e.g. ``formation_energy_per_atom``: train a property-conditioned network on the crystals labelled with
    it; the preset must take a property), ``init_from`` (a checkpoint whose weights and data statistics a fresh run
    starts from: a fine-tune; see :func:`transfer_weights`). SIGTERM or SIGINT stops it at the next batch with a
    checkpoint.
    """
    from harness.generator import TrainResult, resolve_device
    from harness.io import atomic_write, atomic_write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    preset = kind.get_preset(config.get("preset") or "cpu", config.get("batch_size"))
    device = resolve_device(config.get("device"))
    max_seconds = 60.0 * config["max_minutes"] if config.get("max_minutes") else float("inf")
    on_checkpoint = config.get("on_checkpoint") or (lambda: None)

    condition = config.get("condition")
    init_from = Path(config["init_from"]) if config.get("init_from") else None
    converted = convert_split(split)
    condition_info = None
    if condition:
        crystals, labels, condition_info = labelled_crystals(converted, split, condition)
        if not crystals:
            raise ValueError(f"{split.dataset}:{split.name}: no encoded crystal carries a {condition!r} label")
        packed = pack(crystals, labels)
    else:
        crystals = converted.valid()
        packed = pack(crystals)
    last_path = out_dir / "last.pt"
    state = None
    init_info = None
    if config.get("resume") and last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        preset = kind.preset_from_dict(state["preset"])
        saved = state.get("manifest", {})
        if (saved.get("condition") or {}).get("property") != condition:
            raise ValueError(f"{last_path} was trained with condition {(saved.get('condition') or {}).get('property')!r}, "
                             f"not {condition!r} (start over with --fresh, or train into another --out)")
        model, _ = load_model_file(kind, last_path, device)
        init_info = saved.get("init_from")
        if init_info is None:  # a fine-tune keeps its source's statistics (normalisation, priors) on purpose
            model.stats = refreshed_stats(kind, model.stats, kind.make_stats(packed), last_path)
        model.train()
    elif init_from is not None:
        source, source_manifest = load_model_file(kind, init_from, device)
        model = build_model(kind, preset, source.stats, seed).to(device)
        grown = transfer_weights(source, model)
        from harness.io import sha256_file

        init_info = {"path": init_from.name, "sha256": sha256_file(init_from), "epochs": source_manifest.get("epochs"),
                     "splits": source_manifest.get("splits"), "grown": grown,
                     "stats": "the source's (its lattice normalisation and sampling priors)"}
        del source
    else:
        model = build_model(kind, preset, kind.make_stats(packed), seed).to(device)
    if conditioning_of(preset) != bool(condition):
        raise ValueError(f"preset {preset.name!r} " + ("takes a property: give a condition (--condition COLUMN)"
                                                       if conditioning_of(preset) else
                                                       f"takes no property, so it cannot be conditioned on {condition!r}"))
    max_epochs = config.get("max_epochs") or preset.optim.max_epochs
    optim = preset.optim
    checkpoint_seconds = 60.0 * (optim.checkpoint_minutes if config.get("checkpoint_minutes") is None
                                 else config["checkpoint_minutes"])
    optimizer = torch.optim.Adam(model.parameters(), lr=optim.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=optim.plateau_factor, patience=optim.plateau_patience, min_lr=optim.min_lr)
    noise_gen = torch.Generator(device=device).manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    history: list[dict] = []
    epoch, wall_before = 0, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        noise_gen.set_state(state["noise_generator"].cpu() if device == "cpu" else state["noise_generator"])
        order_rng.bit_generator.state = state["order_rng"]
        history, epoch, wall_before = state["history"], state["epoch"], state["wall_seconds"]
        log(f"resumed from {last_path} at epoch {epoch}")

    start = time.perf_counter()

    def wall() -> float:
        return wall_before + time.perf_counter() - start

    def manifest() -> dict:  # harness/schema/manifest.schema.json
        return {
            "schema_version": CHECKPOINT_MANIFEST_VERSION,
            "generator": kind.generator, "dataset": split.dataset, "splits": split.name, "data_sha256": split.sha256,
            "crystals_used": len(crystals), "crystals_failed_conversion": len(converted.failures),
            **({"condition": condition_info} if condition_info else {}),
            **({"init_from": init_info} if init_info else {}),
            "representation_code_version": CODE_VERSION, "tolerances": list(converted.tolerances),
            "preset": preset.name, "preset_config": preset.to_dict(), "epochs": epoch, "device": device,
            "wall_seconds": round(wall(), 1),
            "final_losses": {k: history[-1][k] for k in kind.components} if history else {},
            "seed": seed, "torch_version": torch.__version__, "git_commit": commit_label(paths=("plugins",)),
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }

    def checkpoint() -> None:
        shipped = model_payload(kind, model, preset, manifest())
        payload = {**shipped, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "noise_generator": noise_gen.get_state(), "order_rng": order_rng.bit_generator.state,
                   "history": history, "epoch": epoch, "wall_seconds": wall()}
        atomic_write(last_path, lambda p: torch.save(payload, p))
        atomic_write(out_dir / "model.pt", lambda p: torch.save(shipped, p))
        atomic_write_json(out_dir / "manifest.json", shipped["manifest"])
        write_curves(out_dir, history, kind.components)

    last_save = time.perf_counter()
    stop = False
    model.train()
    with stop_on_signals(log) as stop_requested:
        while epoch < max_epochs and not stop:
            sums = dict.fromkeys(kind.components, 0.0)
            batches = 0
            batches_index = size_bucketed_batches(packed, optim.batch_size, order_rng)
            for index in batches_index:
                batch = kind.make_batch(subset(packed, index), model.stats, device)
                losses = (model.loss(batch, noise_gen) if batch.prop is None
                          else model.loss(batch, noise_gen, prop=batch.prop))
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
                optimizer.step()
                for name in kind.components:
                    sums[name] += float(losses[name].detach())
                batches += 1
                if time.perf_counter() - last_save >= checkpoint_seconds:
                    checkpoint()  # mid-epoch: a resume restarts this epoch with the updates so far kept
                    on_checkpoint()
                    last_save = time.perf_counter()
                if wall() - wall_before >= max_seconds or stop_requested.is_set():
                    stop = True  # the partial epoch is dropped from the history; its updates are kept
                    break
            if stop and batches < len(batches_index):
                break
            epoch += 1
            means = {name: sums[name] / max(batches, 1) for name in kind.components}
            scheduler.step(means["total"])
            history.append({"epoch": epoch, "wall_seconds": round(wall(), 1), "lr": optimizer.param_groups[0]["lr"], **means})
            log(f"epoch {epoch} " + " ".join(f"{k}={v:.4g}" for k, v in means.items()) + f" wall={wall():.0f}s")
        checkpoint()
    return TrainResult(out_dir / "model.pt", manifest())
