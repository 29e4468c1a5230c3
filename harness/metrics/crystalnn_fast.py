"""The CrystalNN "ops" structure fingerprint of ``fingerprints.structure_fingerprint``, computed faster.

Same 61 values (mean over sites of matminer ``CrystalNNFingerprint.from_preset("ops")``) with matminer's own
algorithm: one Voronoi tessellation per site on exactly the points pymatgen's ``VoronoiNN`` feeds qhull, then
the ``CrystalNN`` weights and the preset's ``LocalStructOrderParams`` vectorised with numpy.

Exactness: every dot product goes through ``np.matmul`` on (1×3)·(3×1) stacks, which calls the same BLAS
``ddot`` as pymatgen's ``np.dot``/``np.inner``, and Cartesian coordinates go through whichever row product
equals pymatgen's per-vector ``np.dot`` on this CPU (both checked once per process), so coordinates, Voronoi input,
weights and the arguments of every ``acos`` are bitwise pymatgen's. ``np.arccos`` differs from ``math.acos``
by an ulp, so angles near a threshold an order parameter compares against are redone with ``math.acos``. What
remains is summation order and ulp-level ``exp``/``cos`` differences (~1e-15). Anything outside this path
(disorder, a duplicated facet, a weight on a 3-decimal rounding edge, an error) is handed to matminer.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["FALLBACKS", "structure_fingerprint_fast"]

FALLBACKS: Counter = Counter()  # reason -> sites (or structures) computed by matminer instead; diagnostics only

_ANGLE_WINDOW = 1e-10  # rad; np.arccos values this close to a compared-against threshold are redone exactly
_ROUND_WINDOW = 1e-7  # weights within this many thousandths of a round(w, 3) edge go to matminer
_MAX_OP_CN = 12  # the "ops" preset has order parameters up to CN 12, only "wt" above
_IPI = 1 / math.pi  # pymatgen multiplies by 1/pi rather than dividing
_FAC_BCC = 1 / math.exp(-0.5)
_ASIN_THIRD = math.asin(1 / 3)
_TA_KINDS = {"tri_plan_max", "tet_max"}
_EP_KINDS = {"T", "tri_pyr", "sq_pyr", "pent_pyr", "hex_pyr"}
_BIPYR_KINDS = {"tri_bipyr", "pent_bipyr", "hex_bipyr", "oct_max", "sq_plan_max", "hex_plan_max", "see_saw_rect"}
_BOOP_L = {"q2": 2, "q4": 4, "q6": 6}
_KINDS = {"wt", "sgl_bd", "bent", "pent_plan_max", "cuboct_max", "bcc"} | _TA_KINDS | _EP_KINDS | _BIPYR_KINDS
_KINDS |= set(_BOOP_L)


class _Fallback(Exception):
    """This site (or structure) is computed by matminer itself."""


@dataclass(frozen=True)
class _Op:
    cn: int
    kind: str
    params: dict | None


@dataclass(frozen=True)
class _Preset:
    featurizer: object
    ops: tuple[_Op, ...]
    op_cns: frozenset  # CNs with at least one order parameter besides "wt"
    thresholds: np.ndarray  # angles (rad) the preset's order parameters compare against
    distance_cutoffs: tuple[float, float]
    x_diff_weight: float
    search_cutoff: float
    supported: bool


@lru_cache(maxsize=1)
def _preset() -> _Preset:
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    featurizer = CrystalNNFingerprint.from_preset("ops")
    ops = []
    for cn in range(1, max(featurizer.op_types) + 1):
        for op in featurizer.ops.get(cn, []):
            if op == "wt":
                ops.append(_Op(cn, "wt", None))
            else:  # plain dicts: the loaded CommentedMaps are slow to index
                params = op.get_parameters(0)
                ops.append(_Op(cn, op.get_type(0), None if params is None else dict(params)))
    thresholds = {math.pi / 2.0, 0.75 * math.pi}
    for op in ops:
        params = op.params or {}
        thresholds.update(params[key] for key in ("min_SPP", 2, 4) if key in params)
        if op.kind == "pent_plan_max":
            thresholds.add(params["TA"] * math.pi)
    cnn = featurizer.cnn
    geometric = [op for op in ops if op.kind not in {"wt", "sgl_bd"} | set(_BOOP_L)]
    supported = (
        featurizer.chem_info is None
        and not cnn.cation_anion
        and cnn.porous_adjustment
        and bool(cnn.distance_cutoffs)
        and all(op.kind in _KINDS for op in ops)
        and all(op.params is not None and op.cn <= _MAX_OP_CN for op in geometric)
        and all(op.cn <= _MAX_OP_CN for op in ops if op.kind != "wt")
        and all(op.num_ops == 1 for cn_ops in featurizer.ops.values() for op in cn_ops if op != "wt")
    )
    return _Preset(
        featurizer, tuple(ops), frozenset(op.cn for op in ops if op.kind != "wt"),
        np.array(sorted(thresholds)), tuple(cnn.distance_cutoffs or (0, 0)), float(cnn.x_diff_weight),
        cnn.search_cutoff, supported,
    )


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products of (broadcast) rows of 3-vectors, each bitwise ``np.dot`` of the pair (BLAS ddot)."""
    return np.matmul(a[..., None, :], b[..., :, None])[..., 0, 0]


def _norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(_rowdot(a, a))  # np.linalg.norm of a 1-D vector is sqrt(x.dot(x))


def _sum_rows(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` as three products summed left to right, without fused multiply-adds."""
    return (rows[:, 0:1] * matrix[0] + rows[:, 1:2] * matrix[1]) + rows[:, 2:3] * matrix[2]


@lru_cache(maxsize=1)
def _cartesian_rows():
    """The vectorised product that reproduces pymatgen's per-vector ``np.dot(frac, matrix)`` here, or None.

    OpenBLAS chooses its kernels by CPU: on some a matrix product equals the per-row vector product bit for
    bit, on others (an AMD EPYC, for one) the matrix kernel fuses multiply-adds and the vector kernel does not.
    """
    rng = np.random.default_rng(0)
    rows, matrix = rng.normal(size=(97, 3)), rng.normal(size=(3, 3)) * 5
    single = np.array([np.dot(row, matrix) for row in rows])
    for product in (np.matmul, _sum_rows):
        if np.array_equal(product(rows, matrix), single):
            return product
    return None


@lru_cache(maxsize=1)
def _bitwise_blas() -> bool:
    """Whether ``_rowdot`` and one of the row products reproduce pymatgen's per-vector ``np.dot`` here."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(97, 3)), rng.normal(size=(97, 3))
    dots = _rowdot(a[:, None, :], b[None, :, :])
    return bool(
        all(dots[i, j] == np.dot(a[i], b[j]) for i in range(0, 97, 7) for j in range(97))
        and _cartesian_rows() is not None
    )


def structure_fingerprint_fast(structure) -> np.ndarray:
    """Mean over sites of the CrystalNN "ops" site fingerprint; equals ``structure_fingerprint`` to ~1e-15."""
    preset = _preset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not (preset.supported and _bitwise_blas() and structure.is_ordered):
            FALLBACKS["structure"] += 1
            rows = [preset.featurizer.featurize(structure, i) for i in range(len(structure))]
            return np.asarray(rows, dtype=float).mean(axis=0)
        try:
            context = _Context(structure, preset)
        except Exception:  # e.g. a species without radii: matminer decides, site by site
            context = None
        rows = []
        for i in range(len(structure)):
            try:
                if context is None:
                    raise _Fallback("structure tables")
                rows.append(_site_row(context, i))
            except Exception as exc:  # matminer computes the site, or raises its own error for it
                FALLBACKS[type(exc).__name__ if not isinstance(exc, _Fallback) else str(exc)] += 1
                rows.append(preset.featurizer.featurize(structure, i))
    return np.asarray(rows, dtype=float).mean(axis=0)


class _Context:
    """Per-structure data shared by its sites: lattice, species tables, CrystalNN's pair factors."""

    def __init__(self, structure, preset: _Preset):
        from pymatgen.core.local_env import _get_default_radius, _get_radius

        self.structure, self.preset = structure, preset
        self.lattice = structure.lattice
        self.matrix = self.lattice.matrix
        self.frac = structure.frac_coords
        species = [site.specie for site in structure]
        unique = list(dict.fromkeys(species))
        self.kind = np.array([unique.index(sp) for sp in species])
        first = [structure[species.index(sp)] for sp in unique]
        radius = [_get_radius(site) for site in first]
        default = [_get_default_radius(site) for site in first]
        electroneg = [sp.X for sp in unique]
        k = len(unique)
        self.diameter = np.empty((k, k))
        self.chem = np.ones((k, k))
        for a in range(k):
            for b in range(k):
                ok = radius[a] > 0 and radius[b] > 0
                self.diameter[a, b] = radius[a] + radius[b] if ok else default[a] + default[b]
                x1, x2 = electroneg[a], electroneg[b]
                if not (math.isnan(x1) or math.isnan(x2)):
                    self.chem[a, b] = 1 + preset.x_diff_weight * math.sqrt(abs(x1 - x2) / 3.3)
        corners = [[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]]
        self.max_cutoff = max(np.linalg.norm(self.lattice.get_cartesian_coords(c)) for c in corners) + 0.01


def _site_row(context: _Context, i: int) -> list[float]:
    """The fingerprint of site ``i`` in the preset's feature order."""
    preset = context.preset
    centre = context.structure[i].coords
    found = _neighbours(context, i, centre)
    cn_weights = _cn_weights(found[1]) if found is not None else {}
    need = [cn for cn, w in cn_weights.items() if w != 0 and cn in preset.op_cns]
    geometry = _Geometry(centre, found[0][: max(need)], preset.thresholds) if need else None
    row = []
    for op in preset.ops:
        wt = cn_weights.get(op.cn, 0)
        if op.kind == "wt" or wt == 0:
            row.append(wt)
        else:
            value = _order_parameter(op, geometry, op.cn)
            row.append(wt * (value or 0))
    return row


def _voronoi_faces(context: _Context, i: int):
    """(points, their sites, solid angles, areas, neighbour point indices) of site ``i``'s ``VoronoiNN`` cell."""
    from scipy.spatial import Voronoi

    cutoff = context.preset.search_cutoff
    centre = context.structure[i].coords
    while True:
        try:
            fracs, dists, sites, _ = context.lattice.get_points_in_sphere(
                context.frac, centre, cutoff, zip_results=False
            )
            order = np.argsort(dists, kind="stable")
            points = _cartesian_rows()(np.asarray(fracs)[order], context.matrix)
            return (points, np.asarray(sites)[order], *_cell_faces(Voronoi(points), points))
        except RuntimeError as exc:  # QhullError or an unbounded cell: VoronoiNN doubles the cutoff
            if cutoff >= context.max_cutoff:
                raise _Fallback("voronoi") from exc
            cutoff = min(cutoff * 2, context.max_cutoff + 0.001)


def _cell_faces(voro, points: np.ndarray):
    ridges = voro.ridge_points
    hit = np.flatnonzero((ridges[:, 0] == 0) | (ridges[:, 1] == 0))
    if hit.size == 0:
        raise _Fallback("no voronoi neighbours")
    others = np.where(ridges[hit, 1] == 0, ridges[hit, 0], ridges[hit, 1])
    faces = [voro.ridge_vertices[r] for r in hit.tolist()]
    if any(-1 in face for face in faces):
        raise RuntimeError("infinite vertex in the Voronoi construction")
    if len(set(others.tolist())) != len(others):
        raise _Fallback("repeated voronoi neighbour")
    tri = [(face[0], face[t], face[t + 1], f, t - 1) for f, face in enumerate(faces) for t in range(1, len(face) - 1)]
    solid = np.zeros(len(faces))
    volume = np.zeros(len(faces))
    centre = points[0]
    if tri:
        a0, a1, a2, face_of, slot = (np.array(column) for column in zip(*tri))
        vertices = voro.vertices
        v0, v1, v2 = vertices[a0], vertices[a1], vertices[a2]
        d0, d1, d2 = v0 - centre, v1 - centre, v2 - centre
        r0, r1, r2 = _norm(d0), _norm(d1), _norm(d2)
        # pymatgen's solid_angle: tan(Ω/2) = tp/de per fan triangle (Van Oosterom & Strackee)
        tp = np.abs(_rowdot(d0, np.cross(d1, d2)))
        de = r0 * r1 * r2 + r2 * _rowdot(d0, d1) + r1 * _rowdot(d0, d2) + r0 * _rowdot(d1, d2)
        with np.errstate(divide="ignore", invalid="ignore"):
            angle = np.arctan(tp / de)
        angle = np.where(de == 0, np.where(tp > 0, 0.5 * math.pi, -0.5 * math.pi), angle)
        angle = np.where(angle > 0, angle, angle + math.pi) * 2
        tetra = np.abs(_rowdot(centre - v2, np.cross(v0 - v2, v1 - v2))) / 6
        solid = _sequential_sums(angle, face_of, slot, len(faces))
        volume = _sequential_sums(tetra, face_of, slot, len(faces))
    face_dist = _norm(centre - points[others]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        area = 3 * volume / face_dist
    return solid, area, others


def _sequential_sums(values, group, slot, n_groups) -> np.ndarray:
    """Per-group sums added left to right, as pymatgen's Python loops add them."""
    table = np.zeros((n_groups, slot.max() + 1))
    table[group, slot] = values
    return np.cumsum(table, axis=1)[:, -1]


def _neighbours(context: _Context, i: int, centre: np.ndarray):
    """(neighbour coordinates, rounded weights), heaviest first, as ``CrystalNN.get_nn_data``; None for CN 0."""
    preset = context.preset
    points, sites, solid, area, others = _voronoi_faces(context, i)
    max_solid = solid.max()
    if not np.isfinite(max_solid) or not np.all(np.isfinite(area)):
        raise _Fallback("degenerate voronoi face")
    keep = solid > 0 * max_solid
    if not keep.any():
        raise _Fallback("no weighted neighbour")
    solid, area, others = solid[keep], area[keep], others[keep]
    weight = solid / max_solid
    weight = weight * (solid / area)
    kinds = context.kind[sites[others]]
    if preset.x_diff_weight > 0:
        weight = weight * context.chem[context.kind[i], kinds]
    order = np.argsort(-weight, kind="stable")
    weight, others, kinds = weight[order], others[order], kinds[order]
    if weight[0] == 0:
        return None
    weight = weight / weight[0]
    dist = _norm(centre - points[others])
    low = context.diameter[context.kind[i], kinds] + preset.distance_cutoffs[0]
    high = context.diameter[context.kind[i], kinds] + preset.distance_cutoffs[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = (np.cos((dist - low) / (high - low) * math.pi) + 1) * 0.5
    weight = weight * np.where(dist <= low, 1.0, np.where(dist < high, ramp, 0.0))
    order = np.argsort(-weight, kind="stable")
    weight, others = weight[order], others[order]
    if not np.all(np.isfinite(weight)):
        raise _Fallback("non-finite weight")
    if weight[0] == 0:
        return None
    thousandths = weight * 1000
    if np.any(np.abs(thousandths - np.floor(thousandths) - 0.5) < _ROUND_WINDOW):
        raise _Fallback("weight on a rounding edge")
    rounded = np.round(weight, 3)  # round() of a numpy float64, as CrystalNN calls it
    positive = rounded > 0
    return points[others[positive]], rounded[positive]


def _cn_weights(rounded: np.ndarray) -> dict[int, float]:
    """CN -> probability from the distinct rounded weights (CrystalNN's semicircle integral)."""
    bins = [float(w) for w in dict.fromkeys(rounded.tolist())] + [0.0]
    counts = np.cumsum([np.count_nonzero(rounded == w) for w in bins[:-1]])

    def quarter_area(x: float) -> float:
        if x == 1:
            return 0.25 * math.pi
        root = math.sqrt(1 - x * x)
        return 0.5 * (x * root + math.atan(x / root))

    return {int(cn): (quarter_area(hi) - quarter_area(lo)) / (0.25 * math.pi)
            for cn, hi, lo in zip(counts, bins[:-1], bins[1:])}


class _Geometry:
    """Angles among a site's neighbours, heaviest first, computed as ``LocalStructOrderParams`` does."""

    def __init__(self, centre: np.ndarray, neighbours: np.ndarray, thresholds: np.ndarray):
        rij = neighbours - centre
        self.dist = _norm(rij)
        self.unit = u = rij / self.dist[:, None]
        gram = _rowdot(u[:, None, :], u[None, :, :])  # gram[j, k] = u_j . u_k
        self.theta = _acos(gram, thresholds)
        # x axis of the frame with neighbour j at the north pole and k on the prime meridian (Gram-Schmidt)
        xaxis = u[None, :, :] - (gram / np.diagonal(gram)[:, None])[:, :, None] * u[:, None, :]
        length = _norm(xaxis)
        self.flat = length < 1e-12  # k (anti)parallel to j: pymatgen skips the azimuths of this pair
        xaxis = xaxis / np.where(self.flat, 1.0, length)[..., None]
        self.phi = _acos(_rowdot(xaxis[:, None, :, :], xaxis[:, :, None, :]), thresholds)  # phi[j, k, m]
        if not (np.all(np.isfinite(self.theta)) and np.all(np.isfinite(self.phi))):
            raise _Fallback("non-finite neighbour geometry")
        self._masks: dict[int, tuple] = {}

    def masks(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pairs j != k, triples pymatgen visits, those of them with an azimuth) among the first n neighbours."""
        if n not in self._masks:
            pair = ~np.eye(n, dtype=bool)
            # m is neither j nor k, and the j-k pair defines an x axis
            triple = pair[:, :, None] & pair[:, None, :] & pair[None, :, :] & ~self.flat[:n, :n, None]
            self._masks[n] = pair, triple, triple & ~self.flat[:n, None, :n]
        return self._masks[n]


def _acos(x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    x = np.clip(x, -1.0, 1.0)
    out = np.arccos(x)
    near = np.abs(out[..., None] - thresholds).min(axis=-1) < _ANGLE_WINDOW
    if near.any():
        out[near] = [math.acos(v) for v in x[near].tolist()]
    return out


def _gauss(x):
    return np.exp(-0.5 * x * x)


def _order_parameter(op: _Op, geometry: _Geometry, n: int) -> float | None:
    """One preset order parameter of the first ``n`` neighbours (None where pymatgen returns None)."""
    if op.kind == "sgl_bd":
        dist = np.sort(geometry.dist[:n])
        return 1.0 if n == 1 else 1 - dist[0] / dist[1]
    if op.kind in _BOOP_L:
        return _steinhardt(geometry.unit[:n], _BOOP_L[op.kind])
    p = op.params
    theta, phi = geometry.theta[:n, :n], geometry.phi[:n, :n, :n]
    pair, triple, azimuthal = geometry.masks(n)
    tk, tm = theta[:, :, None], theta[:, None, :]
    kind = op.kind
    zeros = np.zeros((n, n, n))
    pq, pn, tq, tn = np.zeros((n, n)), np.zeros((n, n)), zeros, zeros
    if kind == "bent":
        pq, pn = _gauss(p["IGW_TA"] * (theta * _IPI - p["TA"])), np.ones((n, n))
        total = pn[pair].sum()
        return pq[pair].sum() / total if total > 1e-12 else None
    if kind in _TA_KINDS:
        pq, pn = _gauss(p["IGW_TA"] * (theta * _IPI - p["TA"])), np.ones((n, n))
        tq = _gauss(p["IGW_TA"] * (tm * _IPI - p["TA"])) * np.cos(p["fac_AA"] * phi) ** p["exp_cos_AA"]
        tq, tn = np.where(azimuthal, tq, 0.0), azimuthal
    elif kind in _EP_KINDS:
        pq, pn = _gauss(p["IGW_EP"] * (theta * _IPI - 0.5)), np.ones((n, n))
        tq = np.cos(p["fac_AA"] * phi) ** p["exp_cos_AA"] * _gauss(p["IGW_EP"] * (tm * _IPI - 0.5))
        tq, tn = np.where(azimuthal, tq, 0.0), azimuthal
    elif kind in _BIPYR_KINDS:
        if kind == "hex_plan_max":
            def polar(t):
                return _gauss(p["IGW_TA"] * (np.abs(t * _IPI - 0.5) - p["TA"]))
        else:
            def polar(t):
                return _gauss(p["IGW_EP"] * (t * _IPI - 0.5))
        below = theta < p["min_SPP"]
        pq, pn = np.where(below, polar(theta), 0.0), below
        south = triple & (tm >= p["min_SPP"])
        equator = azimuthal & (tm < p["min_SPP"]) & (tk < p["min_SPP"])
        if kind == "see_saw_rect":
            equator &= phi < 0.75 * math.pi
        tq = np.where(south, _gauss(p["IGW_SPP"] * (tm * _IPI - 1.0)), 0.0)
        tq = tq + np.where(equator, np.cos(p["fac_AA"] * phi) ** p["exp_cos_AA"] * polar(tm), 0.0)
        tn = south.astype(float) + equator
    elif kind == "pent_plan_max":
        def centre(t):
            return np.where(t <= p["TA"] * math.pi, 0.4, 0.8)
        pq, pn = _gauss(p["IGW_TA"] * (theta * _IPI - centre(theta))), np.ones((n, n))
        tq = _gauss(p["IGW_TA"] * (tm * _IPI - centre(tm))) * np.cos(phi) ** 2
        tq, tn = np.where(azimuthal, tq, 0.0), azimuthal
    elif kind == "cuboct_max":
        south = theta >= p["min_SPP"]
        pq = np.where(south, p["w_SPP"] * _gauss(p["IGW_SPP"] * (theta * _IPI - 1.0)), 0.0)
        pn = np.where(south, p["w_SPP"], 0.0)
        ok = azimuthal & (tm < p["min_SPP"]) & (p[4] < tk) & (tk < p[2])
        band, low, high = ok & (p[4] < tm) & (tm < p[2]), ok & (tm < p[4]), ok & (tm > p[2])
        tilt = _gauss(0.0556 * (np.cos(phi - 0.5 * math.pi) - 0.81649658))
        tq = np.where(band, np.cos(phi) ** 2 * _gauss(p[5] * (tm * _IPI - 0.5)), 0.0)
        tq = tq + np.where(low, tilt * _gauss(p[6] * (tm * _IPI - 1 / 3)), 0.0)
        tq = tq + np.where(high, tilt * _gauss(p[6] * (tm * _IPI - 2 / 3.0)), 0.0)
        tn = band.astype(float) + low + high
    elif kind == "bcc":
        upper = np.triu(np.ones((n, n), dtype=bool), 1)
        south = upper & (theta >= p["min_SPP"])
        total = np.where(south, p["w_SPP"] * _gauss(p["IGW_SPP"] * (theta * _IPI - 1.0)), 0.0).sum()
        equator = azimuthal & upper[:, :, None] & (tk < p["min_SPP"])
        sign = np.where(tk > math.pi / 2.0, 1.0, -1.0)
        tilt = (tm - math.pi / 2.0) / _ASIN_THIRD
        total += np.where(equator, sign * np.cos(3 * phi) * _FAC_BCC * tilt * _gauss(tilt), 0.0).sum()
        return total / float(0.5 * float(n * (6 + (n - 2) * (n - 3)))) if n > 3 else None
    else:
        raise _Fallback(f"order parameter {kind}")
    if n <= 1:
        return None
    q = pq + np.where(triple, tq, 0.0).sum(axis=2)
    norm = np.asarray(pn, dtype=float) + np.where(triple, tn, 0.0).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(norm > 1e-12, q / norm, 0.0)
    return float(value[pair].max())


def _steinhardt(unit: np.ndarray, degree: int) -> float:
    """Steinhardt q_l with pymatgen's angle conventions (azimuth 0 within 1e-12 of the poles)."""
    from scipy.special import sph_harm_y

    left_of_unity = 1 - 1e-12
    thetas, phis = [], []
    for x, y, z in unit.tolist():
        thetas.append(math.acos(max(-1.0, min(z, 1.0))))
        phi = 0.0
        if -left_of_unity < z < left_of_unity:
            phi = math.acos(max(-1.0, min(x / math.sqrt(x * x + y * y), 1.0)))
            phi = -phi if y < 0.0 else phi
        phis.append(phi)
    m = np.arange(degree + 1)[:, None]
    sums = sph_harm_y(degree, m, np.array(thetas)[None, :], np.array(phis)[None, :]).sum(axis=1)
    power = np.abs(sums) ** 2
    acc = power[0] + 2 * power[1:].sum()  # |Y_l,-m| = |Y_l,m|
    return math.sqrt(4 * math.pi * acc / ((2 * degree + 1) * float(len(thetas) ** 2)))
