"""Training SyMat: joint VAE + distance-score loss, time-boxed, resumable, with loss curves and a shippable checkpoint."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import torch

from harness.generator import TrainResult
from harness.io import atomic_write, atomic_write_json
from harness.provenance import commit_label
from harness.schemas import CHECKPOINT_MANIFEST_VERSION
from harness.training import stop_on_signals
from plugins.symat import presets
from plugins.symat.data import collate, from_structure, lattice_stats
from plugins.symat.model import LOSS_WEIGHTS, SyMat, estimate_sigma_hat

COMPONENTS = ("total", *LOSS_WEIGHTS)
PROPERTY_COMPONENTS = (*COMPONENTS, "property")
CHECKPOINT_FORMAT = "symat-ckpt-1"


def build_model(cfg: dict, max_atoms: int, lattice_mean, lattice_std, seed: int) -> SyMat:
    """A freshly initialised model; initialisation draws from a forked RNG so global state is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SyMat(cfg, max_atoms, lattice_mean, lattice_std)


def model_payload(model: SyMat) -> dict[str, Any]:
    """What :func:`load_model` needs: settings, dataset statistics and float32 weights."""
    return {
        "format": CHECKPOINT_FORMAT,
        "cfg": {k: model.cfg[k] for k in presets.MODEL_KEYS if model.cfg.get(k) is not None},
        "max_atoms": model.max_atoms,
        "lattice_mean": model.lattice_mean.tolist(),
        "lattice_std": model.lattice_std.tolist(),
        "state_dict": {k: v.detach().cpu().float() for k, v in model.state_dict().items()},
    }


def load_model(path: Path, device: str = "cpu") -> tuple[SyMat, dict]:
    """Rebuild a model from a checkpoint written by :func:`train` (either ``model.pt`` or ``last.pt``)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a symat checkpoint (format {payload.get('format')!r})")
    model = SyMat(payload["cfg"], payload["max_atoms"], payload["lattice_mean"], payload["lattice_std"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload


def start_from(path: Path, condition: str | None, labels) -> tuple[SyMat, dict]:
    """A fine-tune's model: ``path``'s weights, statistics and sigma-hat, plus a new latent property predictor for
    ``condition`` (standardised by the finite ``labels``) when one is asked for; returns (model, init_from info)."""
    import numpy as np

    from harness.io import sha256_file

    source, _ = load_model(path)
    cfg = dict(source.cfg)
    if condition:
        finite = np.asarray(labels, dtype=float)
        finite = finite[np.isfinite(finite)]
        cfg |= {"property": condition, "property_mean": float(finite.mean()),
                "property_std": float(max(finite.std(), 1e-6))}
    model = SyMat(cfg, source.max_atoms, source.lattice_mean.tolist(), source.lattice_std.tolist())
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not key.startswith("property_head.") for key in missing):
        raise ValueError(f"{path}: its weights do not fit this model (missing {missing}, unexpected {unexpected})")
    manifest_path = path.with_name(path.stem + ".manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return model, {"path": path.name, "sha256": sha256_file(path), "epochs": manifest.get("epochs"),
                   "splits": manifest.get("splits"), "new": sorted({k.split(".")[0] for k in missing})}


def _plot(csv_path: Path, png_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    if df.empty:
        return
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    components = PROPERTY_COMPONENTS if "property" in df.columns else COMPONENTS
    for ax, name in zip(axes.flat, components, strict=False):
        ax.plot(df["epoch"], df[name])
        ax.set_title(name if name in ("total", "property") else f"{name} (weight {LOSS_WEIGHTS[name]:g})")
        ax.set_xlabel("epoch")
        ax.set_yscale("log" if (df[name] > 0).all() else "linear")
    for ax in list(axes.flat)[len(components) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(png_path, lambda p: fig.savefig(p, format="png", dpi=80))
    plt.close(fig)


def train(split, config: dict[str, Any], out_dir: Path, seed: int) -> TrainResult:
    """Train on ``split``; config keys: preset, max_epochs, max_minutes, device, batch_size, resume (continue from
    ``out_dir/last.pt``); optional preset_overrides (dict of preset keys), checkpoint_minutes (default 5),
    on_checkpoint (called with no arguments after each periodic save), condition (a split column: train the latent
    property predictor on the crystals labelled in it, jointly with the rest; unlabelled crystals train the rest only)
    and init_from (a checkpoint a fresh run starts from: a fine-tune at the preset's finetune_lr). SIGTERM or SIGINT
    stops it before the next batch; the unfinished epoch is not counted and a resume repeats it."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = {
        **config.get("preset_overrides", {}),
        "max_epochs": config.get("max_epochs"),
        "batch_size": config.get("batch_size"),
    }
    cfg = presets.resolve(config.get("preset") or "cpu", overrides)
    device = config.get("device") or "cpu"
    max_minutes = config.get("max_minutes")
    every = 60.0 * float(5.0 if config.get("checkpoint_minutes") is None else config["checkpoint_minutes"])
    on_checkpoint = config.get("on_checkpoint") or (lambda: None)
    last_path, csv_path = out_dir / "last.pt", out_dir / "losses.csv"

    crystals = [from_structure(s) for s in split.structures]
    max_atoms = max(len(c.numbers) for c in crystals)
    condition = config.get("condition")
    init_from = Path(config["init_from"]) if config.get("init_from") else None
    labels, condition_info, init_info = None, None, None
    if condition:
        import numpy as np

        from harness.datasets import read_split_column

        labels = read_split_column(split, condition)
        finite = labels[np.isfinite(labels)]
        if not len(finite):
            raise ValueError(f"{split.dataset}:{split.name}: no crystal carries a {condition!r} label")
        condition_info = {"property": condition, "labels": "dataset_dft", "column": condition,
                          "labelled_crystals": int(len(finite)), "unlabelled_kept": int(len(labels) - len(finite)),
                          "label_mean": float(finite.mean()), "label_min": float(finite.min()),
                          "label_max": float(finite.max())}
    state = None
    if config.get("resume") and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        if "optimizer" not in state:
            raise ValueError(f"{last_path} holds weights only; resume needs a last.pt-style checkpoint")
        if state["train_cfg"].get("property") != condition:
            raise ValueError(f"{last_path} was trained with condition {state['train_cfg'].get('property')!r}, not "
                             f"{condition!r} (start over with --fresh, or train into another --out)")
        cfg = {**state["train_cfg"], "max_epochs": cfg["max_epochs"]}
        init_info = state.get("init_from")
        model, _ = load_model(last_path)
    elif init_from is not None:
        model, init_info = start_from(init_from, condition, labels)
        cfg = {**cfg, **{k: model.cfg[k] for k in presets.MODEL_KEYS if model.cfg.get(k) is not None},
               "lr": cfg["finetune_lr"]}
        csv_path.unlink(missing_ok=True)
    else:
        if condition:
            cfg = {**cfg, "property": condition, "property_mean": condition_info["label_mean"],
                   "property_std": float(max(labels[np.isfinite(labels)].std(), 1e-6))}
        mean, std = lattice_stats(crystals, cfg["lattice_scale"])
        model = build_model(cfg, max_atoms, mean, std, seed)
        probe = torch.randperm(len(crystals), generator=torch.Generator().manual_seed(seed))[:256].tolist()
        model.sigma_hat.copy_(estimate_sigma_hat(model, [collate([crystals[i] for i in probe])], seed))
        csv_path.unlink(missing_ok=True)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    epoch = state["epoch"] if state else 0
    wall_before = state["wall_seconds"] if state else 0.0
    last_losses = state.get("last_losses", {}) if state else {}

    def save(final: bool = False) -> None:
        wall = wall_before + time.monotonic() - started
        payload = model_payload(model) | {
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "train_cfg": cfg,
            "wall_seconds": wall,
            "last_losses": last_losses,
            "seed": seed,
            "init_from": init_info,
        }
        atomic_write(last_path, lambda p: torch.save(payload, p))
        atomic_write(out_dir / "model.pt", lambda p: torch.save(model_payload(model), p))
        manifest = {  # harness/schema/manifest.schema.json
            "schema_version": CHECKPOINT_MANIFEST_VERSION,
            "generator": "symat",
            "dataset": split.dataset,
            "splits": split.name,
            "data_sha256": split.sha256,
            "num_train_structures": len(crystals),
            "preset": cfg["preset"],
            "config": cfg,
            "epochs": epoch,
            "wall_seconds": round(wall, 1),
            "git_commit": commit_label(paths=("plugins",)),
            "final_losses": last_losses,
            "seed": seed,
            "torch_version": torch.__version__,
            "device": device,
            "sigma_hat": [round(x, 5) for x in model.sigma_hat.tolist()],
            "complete": final,
            **({"condition": condition_info} if condition_info else {}),
            **({"init_from": init_info} if init_info else {}),
        }
        atomic_write_json(out_dir / "manifest.json", manifest)
        if csv_path.exists():
            _plot(
                csv_path,
                out_dir / "losses.png",
                f"SyMat {split.dataset} ({split.name}, preset {cfg['preset']})",
            )

    last_save = time.monotonic()
    stop = False
    with stop_on_signals() as stop_requested:
        while epoch < cfg["max_epochs"] and not stop:
            order = torch.randperm(
                len(crystals), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
            ).tolist()
            gen = torch.Generator().manual_seed(seed * 7_919 + epoch)
            components = PROPERTY_COMPONENTS if model.property_head is not None else COMPONENTS
            sums = dict.fromkeys(components, 0.0)
            steps = 0
            for start in range(0, len(order), cfg["batch_size"]):
                out_of_time = max_minutes is not None and time.monotonic() - started > 60.0 * max_minutes
                if out_of_time or stop_requested.is_set():
                    stop = True
                    break
                rows = order[start : start + cfg["batch_size"]]
                batch = collate([crystals[i] for i in rows], None if labels is None else labels[rows]).to(device)
                parts = model.losses(batch, gen)
                opt.zero_grad(set_to_none=True)
                parts["total"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
                opt.step()
                for k in components:
                    sums[k] += float(parts[k].detach())
                steps += 1
            if stop:
                break  # a partial epoch is not counted; resume repeats it
            epoch += 1
            last_losses = {k: round(v / max(steps, 1), 6) for k, v in sums.items()}
            _append_csv(
                csv_path,
                {
                    "epoch": epoch,
                    "wall_seconds": round(wall_before + time.monotonic() - started, 1),
                    **last_losses,
                },
            )
            if time.monotonic() - last_save >= every:
                save()
                on_checkpoint()
                last_save = time.monotonic()
        save(final=epoch >= cfg["max_epochs"])
    manifest = json.loads((out_dir / "manifest.json").read_text())
    return TrainResult(checkpoint=out_dir / "model.pt", manifest=manifest)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
