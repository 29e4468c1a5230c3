"""Structural and compositional (SMACT) validity, exactly as the CDVAE/DiffCSP evaluation scripts compute them.

Compositional validity reproduces SMACT 2.x on purpose (docs/protocol.md): the ``oxidation_states_smact14`` list, the
old ``neutral_ratios`` test at the GCD-reduced counts, the old ``pauling_test`` in which a missing
electronegativity raised ``TypeError`` (counted as a pass), and DiffCSP's cap of 10^7 oxidation-state combinations.
SMACT >= 3 changed the default list, and SMACT 4 also makes a missing electronegativity fail the Pauling test and
``neutral_ratios`` return only the list: each would silently move the numbers, so the logic is restated here.
"""

from __future__ import annotations

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
    "smact_validity",
    "struct_validity",
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


@cache
def oxidation_data(symbol: str) -> tuple[tuple[int, ...], float | None]:
    """(``oxidation_states_smact14``, Pauling electronegativity) of an element; no states → empty tuple."""
    import smact

    element = smact.Element(symbol)
    states = element.oxidation_states_smact14 or ()  # He, Ne, Ar: None in SMACT 4, [] in SMACT 2
    return tuple(int(s) for s in states), element.pauling_eneg


@lru_cache(maxsize=1)
def _smact_metals() -> frozenset[str]:
    import smact

    return frozenset(smact.metals)


def pauling_test_smact2(oxidation_states, electronegativities) -> bool:
    """SMACT 2.x ``pauling_test``: cations less electronegative than anions, pairwise in order.

    Comparing against a missing electronegativity raises ``TypeError`` as in SMACT 2.x (callers count it as a
    pass); only the comparisons SMACT 2.x actually evaluated can raise, so the short-circuit order matters.
    """
    for (ox1, eneg1), (ox2, eneg2) in combinations(list(zip(oxidation_states, electronegativities)), 2):
        if ox1 > 0 and ox2 < 0 and _ge(eneg1, eneg2):
            return False
        if ox1 < 0 and ox2 > 0 and _ge(eneg2, eneg1):
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
    """SMACT 2.x charge-neutrality + electronegativity screen on GCD-reduced ``{symbol: count}``."""
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

    An element SMACT does not know (e.g. beyond Lr) makes the composition invalid.
    """
    if isinstance(obj, dict):
        divisor = reduce(math.gcd, obj.values())
        counts = {symbol: int(count) // divisor for symbol, count in obj.items()}
    else:
        counts = element_counts(obj)
    try:
        return smact_validity(counts)
    except KeyError:  # "Elemental data for Og not found": CDVAE's lookup would fail too; invalid here
        return False
