"""The asymmetric-unit representation of crystals shared by symmetry-aware generators (SymmBFN, SymmCD).

A crystal is its space group (number, and SymmCD's binary encoding), its conventional lattice as the 6-vector ``k``
of the symmetric-matrix basis (with the group's mask and fixed values), and one representative per orbit: atomic
number, fractional coordinates, site symmetry (15 axes x 13 operations one-hot), Wyckoff label and multiplicity.

Public API::

    encode(structure, tolerances=(0.01, 0.001, 0.1)) -> AsymmetricCrystal      # raises RepresentationError
    decode(crystal) -> Structure                                                # project, snap, replicate
    structures_from_arrays(arrays) -> list[Structure | None]                    # a model's output, built
    build_structure(space_group, k, atomic_numbers, frac_coords, site_symmetries) -> Structure
    convert_split(split) -> ConvertedSplit                                      # cached on disk
    pack(crystals) -> PackedCrystals                                            # padded arrays for a model
    k_mask(g), fixed_k(g), project_k(k, g), matrix_to_k(m), k_to_matrix(k)     # lattice basis
"""

from plugins._asymmetric.dataset import CODE_VERSION, ConvertedSplit, PackedCrystals, convert_split, pack
from plugins._asymmetric.lattice import fixed_k, k_mask, k_to_matrix, matrix_to_k, project_k
from plugins._asymmetric.representation import (
    DEFAULT_TOLERANCES,
    N_AXES,
    N_OPS,
    AsymmetricCrystal,
    RepresentationError,
    Representative,
    build_structure,
    decode,
    encode,
    group_tables,
    project_site_symmetry,
    space_group_encoding,
    structures_from_arrays,
)

__all__ = [
    "CODE_VERSION", "DEFAULT_TOLERANCES", "N_AXES", "N_OPS", "AsymmetricCrystal", "ConvertedSplit",
    "PackedCrystals", "Representative", "RepresentationError", "build_structure", "convert_split", "decode",
    "encode", "fixed_k", "group_tables", "k_mask", "k_to_matrix", "matrix_to_k", "pack", "project_k",
    "project_site_symmetry", "space_group_encoding", "structures_from_arrays",
]
