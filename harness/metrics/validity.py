"""Structural and compositional (SMACT) validity, exactly as the CDVAE/DiffCSP evaluation scripts compute them.

Compositional validity reproduces SMACT 2.2.1, the version CDVAE pins (docs/protocol.md): its per-element data
(``oxidation_states``, Pauling electronegativities, metals) shipped as ``harness/data/smact_2.2.1_elements.json``,
the old ``neutral_ratios`` test at the GCD-reduced counts, the old ``pauling_test`` (a missing electronegativity
raises ``TypeError`` in a cation-anion comparison, counted as a pass, and fails any other pair it is in), and
DiffCSP's cap of 10^7 oxidation-state combinations. Later SMACT releases changed each of these (Ir's states in 2.3,
Zr's electronegativity in 2.5.4, the missing-electronegativity order in 2.6, the default list and ``neutral_ratios``
in 3), so neither the installed SMACT nor its logic is used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache, lru_cache, reduce
from itertools import combinations

import numpy as np

from harness.protocol import MAX_OXIDATION_COMBINATIONS, MIN_INTERATOMIC_DISTANCE, MIN_VOLUME

__all__ = [
    "comp_validity",
    "element_counts",
    "min_interatomic_distance",
    "oxidation_data",
    "pauling_test_smact2",
    "smact_table",
    "smact_validity",
    "struct_validity",
    "validity_flags",
]


def min_interatomic_distance(structure) -> float:
    """Smallest minimum-image distance between two different sites (inf for a single site)."""
    if len(structure) < 2:
        return math.inf
    distances = np.array(structure.distance_matrix, dtype=float)
    np.fill_diagonal(distances, np.inf)  # a site's distance to its own periodic image is not counted (CDVAE)
    return float(distances.min())


def struct_validity(structure, cutoff: float = MIN_INTERATOMIC_DISTANCE) -> bool:
    """Every pair of distinct sites ≥ ``cutoff`` Å apart (minimum image) and volume ≥ 0.1 Å³."""
    return bool(structure.volume >= MIN_VOLUME and min_interatomic_distance(structure) >= cutoff)


def element_counts(obj) -> dict[str, int]:
    """Element symbol → integer count, divided by the counts' GCD, in order of atomic number (as CDVAE sorts)."""
    composition = getattr(obj, "composition", obj)
    if not isinstance(composition, Mapping) and not hasattr(composition, "get_el_amt_dict"):
        from pymatgen.core import Composition

        composition = Composition(composition)
    pairs = []
    for element, amount in composition.element_composition.items():
        count = int(round(float(amount)))
        if count <= 0 or abs(float(amount) - count) > 1e-6:
            raise ValueError(
                f"non-integer amount {amount} of {element}: only ordered crystals have a SMACT validity"
            )
        pairs.append((element.Z, element.symbol, count))
    pairs.sort()
    divisor = reduce(math.gcd, (count for _, _, count in pairs))
    return {symbol: count // divisor for _, symbol, count in pairs}


SMACT_TABLE = "smact_2.2.1_elements.json"


@lru_cache(maxsize=1)
def smact_table() -> dict:
    """SMACT 2.2.1's per-element data as shipped in ``harness/data`` (its source and sha256 are in the file)."""
    from importlib import resources

    return json.loads(resources.files("harness").joinpath("data", SMACT_TABLE).read_text(encoding="utf-8"))


@cache
def oxidation_data(symbol: str) -> tuple[tuple[int, ...], float | None]:
    """(SMACT 2.2.1 ``oxidation_states``, Pauling electronegativity) of an element; no states → empty tuple.

    Raises ``KeyError`` for an element SMACT 2.2.1 has no data for (beyond Lr, or not an element).
    """
    table = smact_table()
    return tuple(table["oxidation_states"][symbol]), table["pauling_eneg"][symbol]


@lru_cache(maxsize=1)
def _smact_metals() -> frozenset[str]:
    return frozenset(smact_table()["metals"])


def pauling_test_smact2(oxidation_states, electronegativities) -> bool:
    """SMACT 2.2.1 ``pauling_test``: cations less electronegative than anions, pairwise in order.

    A cation-anion pair with a missing electronegativity raises ``TypeError`` (callers count it as a pass); any
    other pair with one fails the test. The first pair that decides wins, so the order matters.
    """
    for (ox1, eneg1), (ox2, eneg2) in combinations(list(zip(oxidation_states, electronegativities)), 2):
        if ox1 > 0 and ox2 < 0:
            if _ge(eneg1, eneg2):
                return False
        elif ox1 < 0 and ox2 > 0:
            if _ge(eneg2, eneg1):
                return False
        elif eneg1 is None or eneg2 is None:
            return False
    return True


def _ge(a, b) -> bool:
    if a is None or b is None:
        raise TypeError("'>=' not supported with a missing electronegativity")
    return a >= b


def _neutral_combinations(states: list[tuple[int, ...]], counts: list[int]) -> np.ndarray:
    """Indices (itertools.product order) of the oxidation-state combinations with zero total charge."""
    charges = [np.asarray(s, dtype=np.int64) * c for s, c in zip(states, counts)]
    total = reduce(np.add.outer, charges)  # C order == itertools.product order
    return np.flatnonzero(np.asarray(total).ravel() == 0)


def smact_validity(
    counts: Mapping[str, int], *, use_pauling_test: bool = True, include_alloys: bool = True
) -> bool:
    """SMACT 2.2.1 charge-neutrality + electronegativity screen on GCD-reduced ``{symbol: count}``, in its order
    (CDVAE's is atomic number: ``comp_validity`` sorts so)."""
    symbols = list(counts)
    if len(set(symbols)) == 1:
        return True
    if include_alloys and all(symbol in _smact_metals() for symbol in symbols):
        return True
    data = [oxidation_data(symbol) for symbol in symbols]
    states = [d[0] for d in data]
    electronegativities = [d[1] for d in data]
    n_combinations = math.prod(len(s) for s in states)
    if n_combinations > MAX_OXIDATION_COMBINATIONS:
        return False  # DiffCSP's cap
    if n_combinations == 0:
        return False  # an element without oxidation states (He, Ne, Ar) cannot balance charge
    # With one stoichiometry per site, old neutral_ratios(ox, stoichs=[(c,)...]) is true iff sum(ox*c) == 0
    # (the counts are GCD-reduced, so its gcd == 1 filter always holds).
    neutral = _neutral_combinations(states, [int(counts[s]) for s in symbols])
    if neutral.size and not use_pauling_test:
        return True
    shape = tuple(len(s) for s in states)
    for flat in neutral:
        combo = [states[k][i] for k, i in enumerate(np.unravel_index(flat, shape))]
        try:
            if pauling_test_smact2(combo, electronegativities):
                return True
        except TypeError:
            return True  # no electronegativity data: CDVAE assumes the combination is fine
    return False


def comp_validity(obj) -> bool:
    """Compositional validity of a Structure, Composition, formula or ``{symbol: count}`` dict.

    An element SMACT 2.2.1 does not know (beyond Lr) makes the composition invalid.
    """
    if isinstance(obj, dict):
        divisor = reduce(math.gcd, obj.values())
        rank = {symbol: z for z, symbol in enumerate(smact_table()["pauling_eneg"])}  # H..Lr: atomic-number order
        ordered = sorted(obj, key=lambda symbol: rank.get(symbol, len(rank)))  # the Pauling test is order-sensitive
        counts = {symbol: int(obj[symbol]) // divisor for symbol in ordered}
    else:
        counts = element_counts(obj)
    try:
        return smact_validity(counts)
    except KeyError:  # SMACT 2.2.1 raises NameError there, so CDVAE's script would stop; invalid here
        return False


def validity_flags(structures) -> tuple[list[bool], list[bool]]:
    """Structural and compositional validity of each structure (``None``, a sample that was not constructed, is
    neither); a check that raises counts as invalid, so one bad structure never stops a run."""
    struct, comp = [], []
    for structure in structures:
        if structure is None:
            struct.append(False)
            comp.append(False)
            continue
        try:
            struct.append(bool(struct_validity(structure)))
        except Exception:
            struct.append(False)
        try:
            comp.append(bool(comp_validity(structure)))
        except Exception:
            comp.append(False)
    return struct, comp
