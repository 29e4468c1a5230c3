"""Sampling SyMat: decode (element set, lattice) from z ~ N(0, I), then annealed Langevin dynamics on coordinates.

Randomness comes only from local ``torch.Generator`` objects, one per chunk of ``CHUNK`` consecutive samples,
seeded from (seed, chunk index): every random draw of a sample comes from its own chunk's generator, so the
samples depend on (n, seed) and not on how chunks are grouped into batches; global RNG state is never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from plugins.symat.data import from_per_atom_lengths
from plugins.symat.graph import build_multigraph, lattice_from_params
from plugins.symat.model import SyMat
from plugins.symat.nets import coordinate_score

MIN_LENGTH, MIN_ANGLE, MAX_ANGLE = 1.0, 30.0, 150.0  # clamps that keep a decoded lattice buildable
MAX_ATOMS_FACTOR = 2  # a decoded composition with more than this x the training maximum is refused (None)
CHUNK = 8  # samples per random stream; batches are whole numbers of chunks


@dataclass(frozen=True)
class LangevinSettings:
    """Algorithm 1's knobs (T and the sigma range live in the checkpoint)."""

    steps_per_level: int  # q
    step_size: float  # epsilon

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decoded:
    """A batch of decoded compositions and lattices; ``ok`` is False where no crystal can be built."""

    numbers: list[list[int]]
    lattices: torch.Tensor  # (B, 3, 3)
    ok: list[bool]


def batch_generator(seed: int, start: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(start)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@torch.no_grad()
def decode_lattice(
    model: SyMat, z_l: torch.Tensor, num_atoms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lattice matrices (and buildability) from z_L; with ``lattice_scale`` the lengths follow the atom counts.

    The regressed items are clamped to mean +- 5 std of the training set (in the decoder's own parameterisation,
    i.e. per N^(1/3) for a ``lattice_scale`` model), then lengths >= MIN_LENGTH and angles in [MIN, MAX]_ANGLE.
    """
    items = model.vae.mlp_l(z_l) * model.lattice_std + model.lattice_mean
    low, high = model.lattice_mean - 5 * model.lattice_std, model.lattice_mean + 5 * model.lattice_std
    items = torch.maximum(torch.minimum(items, high), low)
    params = from_per_atom_lengths(items, num_atoms) if model.cfg.get("lattice_scale") else items
    params = torch.cat(
        [params[:, :3].clamp_min(MIN_LENGTH), params[:, 3:].clamp(MIN_ANGLE, MAX_ANGLE)], dim=-1
    )
    return lattice_from_params(params.double())


@torch.no_grad()
def decode(model: SyMat, z: torch.Tensor) -> Decoded:
    """Section 3.3: top-k element set from p_e, k and counts by argmax, lattice from its six items (appendix B)."""
    vae = model.vae
    z_a, z_l = vae.split(z)
    p_e = torch.sigmoid(vae.mlp_e(z_a))
    k = vae.mlp_k(z_a).argmax(-1) + 1
    numbers = []
    for b in range(len(z)):
        elements = (torch.topk(p_e[b], int(k[b])).indices + 1).sort().values
        crystal = torch.full((len(elements),), b, dtype=torch.long, device=z.device)
        counts = vae.count_logits(z_a, elements, crystal).argmax(-1) + 1
        numbers.append(
            [int(e) for e, c in zip(elements.tolist(), counts.tolist(), strict=True) for _ in range(c)]
        )
    num_atoms = torch.tensor([len(atoms) for atoms in numbers], dtype=torch.long, device=z.device)
    lattices, lattice_ok = decode_lattice(model, z_l, num_atoms)
    ok = [
        bool(lattice_ok[b]) and 0 < len(atoms) <= MAX_ATOMS_FACTOR * model.max_atoms
        for b, atoms in enumerate(numbers)
    ]
    return Decoded(numbers, lattices.to(z.dtype), ok)


def _draw(gens: list[torch.Generator], rows: list[int], draw, device) -> torch.Tensor:
    """One (sum(rows), 3) tensor, ``rows[c]`` rows from chunk c's own generator."""
    parts = [draw((r, 3), generator=g) for g, r in zip(gens, rows, strict=True)]
    return torch.cat(parts).to(device)


@torch.no_grad()
def langevin(
    model: SyMat,
    numbers: torch.Tensor,
    lattices: torch.Tensor,
    num_atoms: torch.Tensor,
    settings: LangevinSettings,
    gens: list[torch.Generator],
    atoms_per_gen: list[int],
) -> torch.Tensor:
    """Algorithm 1: from uniform fractional coordinates, q Langevin steps at each of the T noise levels."""
    device = lattices.device
    crystal_of_atom = torch.repeat_interleave(torch.arange(len(num_atoms), device=device), num_atoms)
    frac = _draw(gens, atoms_per_gen, torch.rand, device)
    inv = torch.linalg.inv(lattices)[crystal_of_atom]
    sigma_min = model.sigmas[-1]
    for t, sigma in enumerate(model.sigmas):
        alpha = settings.step_size * (sigma / sigma_min) ** 2
        level = torch.full_like(numbers, t)
        for _ in range(settings.steps_per_level):
            graph = build_multigraph(frac, lattices, num_atoms, model.cfg["cutoff"])
            score = coordinate_score(model.edge_scores(numbers, graph, level), graph, len(numbers))
            noise = _draw(gens, atoms_per_gen, torch.randn, device)
            step = alpha * score + torch.sqrt(2 * alpha) * noise
            frac = torch.remainder(frac + torch.einsum("na,nab->nb", step, inv), 1.0)
    return frac


def sample(model: SyMat, n: int, seed: int, batch_size: int, settings: LangevinSettings) -> list:
    """``n`` pymatgen Structures (``None`` where a sample cannot be built), deterministic for (n, seed)."""
    latent = model.vae.latent_a + model.vae.latent_l
    return _from_latents(model, n, seed, batch_size, settings,
                         lambda g, m: torch.randn((m, latent), generator=g))


def structures_from_latents(model: SyMat, z: torch.Tensor, seed: int, batch_size: int,
                            settings: LangevinSettings) -> list:
    """Decode given latents (e.g. optimised ones) into Structures: the composition and lattice from z, the
    coordinates by Langevin dynamics whose noise comes from (seed, chunk) streams as in :func:`sample`."""
    z = z.detach().cpu()
    return _from_latents(model, len(z), seed, batch_size, settings, lambda g, m, _z=z: None, given=z)


def _from_latents(model: SyMat, n: int, seed: int, batch_size: int, settings: LangevinSettings, draw,
                  given: torch.Tensor | None = None) -> list:
    from pymatgen.core import Lattice, Structure

    device = next(model.parameters()).device
    per_batch = CHUNK * max(1, -(-batch_size // CHUNK))
    out: list = []
    for start in range(0, n, per_batch):
        size = min(per_batch, n - start)
        chunks = [(c, min(CHUNK, size - c)) for c in range(0, size, CHUNK)]
        gens = [batch_generator(seed, (start + c) // CHUNK) for c, _ in chunks]
        if given is None:
            z = torch.cat([draw(g, m) for g, (_, m) in zip(gens, chunks, strict=True)])
        else:
            z = given[start : start + size]
        decoded = decode(model, z.to(device))
        keep = [b for b in range(size) if decoded.ok[b]]
        results: list = [None] * size
        if keep:
            try:
                nums = [decoded.numbers[b] for b in keep]
                atoms_per_gen = [
                    sum(len(decoded.numbers[b]) for b in keep if c <= b < c + m) for c, m in chunks
                ]
                numbers = torch.tensor(
                    [z_ for atoms in nums for z_ in atoms], dtype=torch.long, device=device
                )
                num_atoms = torch.tensor([len(a) for a in nums], dtype=torch.long, device=device)
                lattices = decoded.lattices[keep]
                frac = langevin(model, numbers, lattices, num_atoms, settings, gens, atoms_per_gen)
                frac = frac.cpu().double().numpy()
                bounds = np.concatenate([[0], np.cumsum(num_atoms.cpu().numpy())])
                for i, b in enumerate(keep):
                    results[b] = _build(
                        Lattice, Structure, lattices[i], nums[i], frac[bounds[i] : bounds[i + 1]]
                    )
            except (RuntimeError, ValueError):
                pass  # a numerical failure loses this batch's samples, never the run
        out.extend(results)
    return out


def _build(Lattice, Structure, lattice, numbers, frac):
    try:
        if not np.isfinite(frac).all():
            return None
        return Structure(Lattice(lattice.cpu().double().numpy()), numbers, frac)
    except (ValueError, TypeError):
        return None
