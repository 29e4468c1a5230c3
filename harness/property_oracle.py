"""A supervised property oracle: a small crystal graph network trained on a dataset's own labels.

CDVAE's optimisation scores its decodes with a separately trained graph network (its ``prop_model_eval`` and
``prop_models/``), never with the generator's own latent predictor; SyMat follows that procedure (sec. 4.3). Where
no physics code gives the optimised quantity offline (Perov-5's ``heat_ref``, Castelli et al.'s heat of formation
against their own references), the protocol's oracle is such a network: trained here on the training split with the
validation split choosing the epoch, measured on the test split, shipped with its weights' sha256 and a manifest
(``harness/data/oracles/``). It scores a crystal as decoded, unrelaxed, as CDVAE's does.

The network is CGCNN-like: element embeddings, gated convolutions over each atom's nearest periodic neighbours
(distances expanded in Gaussians), a mean over atoms and a two-layer head. Rotation, translation, atom order and
the choice of cell leave its input unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ORACLE_DIR", "GraphSettings", "OracleError", "PropertyOracle", "crystal_graph", "held_out_metrics",
           "load_oracle", "oracle_paths", "train_oracle"]

ORACLE_DIR = Path(__file__).parent / "data" / "oracles"
MAX_Z = 100


class OracleError(RuntimeError):
    """An oracle that is not shipped, or whose weights do not match their manifest."""


@dataclass(frozen=True)
class GraphSettings:
    """How a crystal becomes a graph, and the network's size; part of the oracle's definition."""

    cutoff: float = 6.0  # Å, the neighbour search radius
    max_neighbors: int = 12  # nearest within the cutoff, per atom
    n_gaussians: int = 40
    hidden: int = 64
    layers: int = 3


def crystal_graph(structure, settings: GraphSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(atomic numbers, edge sources, edge targets, edge lengths) over periodic images: each atom's
    ``max_neighbors`` nearest neighbours within ``cutoff`` (fewer where fewer are in range)."""
    z = np.array([site.specie.Z for site in structure], dtype=np.int64)
    if z.size == 0:
        raise ValueError("a crystal with no atoms")
    if z.max() > MAX_Z:
        raise ValueError(f"element Z={int(z.max())} is beyond the oracle's table (Z <= {MAX_Z})")
    centres, neighbours, _images, lengths = structure.get_neighbor_list(settings.cutoff)
    keep = lengths > 1e-8
    centres, neighbours, lengths = centres[keep], neighbours[keep], lengths[keep]
    order = np.lexsort((lengths, centres))  # by centre, nearest first
    centres, neighbours, lengths = centres[order], neighbours[order], lengths[order]
    if centres.size:
        first = np.searchsorted(centres, centres, side="left")
        rank = np.arange(centres.size) - first
        keep = rank < settings.max_neighbors
        centres, neighbours, lengths = centres[keep], neighbours[keep], lengths[keep]
    return z, neighbours.astype(np.int64), centres.astype(np.int64), lengths.astype(np.float32)


def _network(settings: GraphSettings):
    import torch
    from torch import nn

    class GatedConvolution(nn.Module):
        def __init__(self, hidden: int, edge: int):
            super().__init__()
            self.linear = nn.Linear(2 * hidden + edge, 2 * hidden)
            self.norm = nn.LayerNorm(hidden)

        def forward(self, h, src, dst, e):
            gate, core = self.linear(torch.cat([h[dst], h[src], e], dim=1)).chunk(2, dim=1)
            message = torch.sigmoid(gate) * nn.functional.softplus(core)
            return h + self.norm(torch.zeros_like(h).index_add_(0, dst, message))

    class CrystalGraphNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(MAX_Z + 1, settings.hidden)
            self.register_buffer("centres", torch.linspace(0.0, settings.cutoff, settings.n_gaussians))
            self.width = settings.cutoff / settings.n_gaussians
            self.convs = nn.ModuleList(GatedConvolution(settings.hidden, settings.n_gaussians)
                                       for _ in range(settings.layers))
            self.head = nn.Sequential(nn.Linear(settings.hidden, settings.hidden), nn.SiLU(),
                                      nn.Linear(settings.hidden, 1))

        def forward(self, z, src, dst, length, graph_of_atom, n_graphs):
            e = torch.exp(-((length[:, None] - self.centres[None, :]) / self.width) ** 2)
            h = self.embed(z)
            for conv in self.convs:
                h = conv(h, src, dst, e)
            pooled = torch.zeros(n_graphs, h.shape[1], dtype=h.dtype).index_add_(0, graph_of_atom, h)
            counts = torch.bincount(graph_of_atom, minlength=n_graphs).clamp(min=1)
            return self.head(pooled / counts[:, None]).squeeze(1)

    return CrystalGraphNet()


def _collate(graphs: Sequence[tuple]):
    import torch

    zs, srcs, dsts, lengths, owner = [], [], [], [], []
    offset = 0
    for g, (z, src, dst, length) in enumerate(graphs):
        zs.append(z)
        srcs.append(src + offset)
        dsts.append(dst + offset)
        lengths.append(length)
        owner.append(np.full(z.size, g, dtype=np.int64))
        offset += z.size
    cat = np.concatenate
    return (torch.from_numpy(cat(zs)), torch.from_numpy(cat(srcs)), torch.from_numpy(cat(dsts)),
            torch.from_numpy(cat(lengths)), torch.from_numpy(cat(owner)), len(graphs))


def _predict(net, graphs: Sequence[tuple], batch_size: int = 256) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(graphs), batch_size):
            out.append(net(*_collate(graphs[i:i + batch_size])).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def held_out_metrics(truth: np.ndarray, predicted: np.ndarray, thresholds: Sequence[float] = (),
                     better: str = "lower") -> dict[str, Any]:
    """MAE, RMSE, R², Spearman's rho, and per threshold how often oracle and truth agree on "a success"."""
    from scipy.stats import spearmanr

    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    err = predicted - truth
    result: dict[str, Any] = {
        "n": int(truth.size), "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))),
        "r2": float(1 - np.sum(err ** 2) / np.sum((truth - truth.mean()) ** 2)),
        "spearman": float(spearmanr(truth, predicted).statistic), "thresholds": {}}
    for threshold in thresholds:
        hit_truth = truth <= threshold if better == "lower" else truth >= threshold
        hit_oracle = predicted <= threshold if better == "lower" else predicted >= threshold
        both = int(np.sum(hit_truth & hit_oracle))
        result["thresholds"][f"{threshold:.8g}"] = {
            "n_success_truth": int(hit_truth.sum()), "n_success_oracle": int(hit_oracle.sum()),
            "agreement": float(np.mean(hit_truth == hit_oracle)),
            "precision": both / int(hit_oracle.sum()) if hit_oracle.any() else None,
            "recall": both / int(hit_truth.sum()) if hit_truth.any() else None}
    return result


@dataclass(frozen=True)
class TrainedOracle:
    state: dict[str, Any]  # what load_oracle reads: weights, settings, target scaling
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def train_oracle(train_structures: Sequence, train_values: np.ndarray, val_structures: Sequence,
                 val_values: np.ndarray, *, settings: GraphSettings = GraphSettings(), epochs: int = 60,
                 batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0,
                 progress: Callable[[dict[str, float]], None] | None = None) -> TrainedOracle:
    """Fit the network to ``train_values`` (standardised); the epoch with the lowest validation MAE is kept.
    Deterministic for a seed at one torch thread."""
    import torch

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    train_graphs = [crystal_graph(s, settings) for s in train_structures]
    val_graphs = [crystal_graph(s, settings) for s in val_structures]
    y = np.asarray(train_values, dtype=np.float64)
    mean, std = float(y.mean()), float(y.std())
    target = torch.from_numpy(((y - mean) / std).astype(np.float32))
    with torch.random.fork_rng(devices=[]):  # the initial weights from the seed, leaving the caller's RNG alone
        torch.manual_seed(seed)
        net = _network(settings)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    history, best, best_state, best_epoch = [], np.inf, None, 0
    for epoch in range(1, epochs + 1):
        net.train()
        order = rng.permutation(len(train_graphs))
        total = 0.0
        for i in range(0, order.size, batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.mse_loss(net(*_collate([train_graphs[j] for j in idx])), target[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * idx.size
        schedule.step()
        val_mae = float(np.mean(np.abs(_predict(net, val_graphs) * std + mean - np.asarray(val_values))))
        row = {"epoch": epoch, "train_mse_scaled": total / order.size, "val_mae": val_mae,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        if progress is not None:
            progress(row)
        if val_mae < best:
            best, best_epoch = val_mae, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    state = {"format": 1, "settings": asdict(settings), "target_mean": mean, "target_std": std,
             "state_dict": best_state}
    return TrainedOracle(state, history, best_epoch, time.perf_counter() - t0)


def oracle_paths(name: str, root: Path = ORACLE_DIR) -> tuple[Path, Path]:
    """The weights and the manifest of the shipped oracle ``name``."""
    return root / f"{name}.pt", root / f"{name}.manifest.json"


class PropertyOracle:
    """A loaded oracle: ``predict`` scores structures; one that cannot be scored gets NaN and its reason."""

    def __init__(self, name: str, state: dict[str, Any], manifest: dict[str, Any]):
        self.name, self.manifest = name, manifest
        self.settings = GraphSettings(**state["settings"])
        self.mean, self.std = float(state["target_mean"]), float(state["target_std"])
        self.net = _network(self.settings)
        self.net.load_state_dict(state["state_dict"])
        self.net.eval()

    def predict(self, structures: Sequence) -> tuple[np.ndarray, list[str | None]]:
        values = np.full(len(structures), np.nan)
        reasons: list[str | None] = [None] * len(structures)
        graphs, where = [], []
        for i, structure in enumerate(structures):
            if structure is None:
                reasons[i] = "no structure"
                continue
            try:
                graphs.append(crystal_graph(structure, self.settings))
                where.append(i)
            except ValueError as exc:
                reasons[i] = str(exc)
        if graphs:
            values[where] = _predict(self.net, graphs) * self.std + self.mean
        return values, reasons


def load_oracle(name: str, root: Path = ORACLE_DIR) -> PropertyOracle:
    """The shipped oracle ``name``, after checking its weights' sha256 against the manifest."""
    import torch

    from harness.io import sha256_file

    weights, manifest_path = oracle_paths(name, root)
    if not weights.exists() or not manifest_path.exists():
        raise OracleError(f"oracle {name!r} is not shipped: {weights} and {manifest_path.name} are needed "
                          "(benchmarks/train_property_oracle.py trains and writes them)")
    manifest = json.loads(manifest_path.read_text())
    digest = sha256_file(weights)
    if digest != manifest.get("weights_sha256"):
        raise OracleError(f"{weights}: sha256 {digest[:12]} does not match its manifest "
                          f"({str(manifest.get('weights_sha256'))[:12]})")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return PropertyOracle(name, state, manifest)
