"""CHGNet's crystal graph built with array operations: the same tensors as its converter, in a fraction of the time.

A relaxation rebuilds every structure's graph at every step. CHGNet 0.3's ``CrystalGraphConverter`` takes the
neighbour list from pymatgen and then builds Python objects per node and per edge (its C helper returns them one by
one) and walks them to list the bond graph's angles. Relaxing 32 MP-20 samples took 1.22 times the CPU time with
it (``benchmarks/bench_relax.py graphs``, ``results/benchmarks/relax_graphs_mp20.json``). Its graph is defined by
simple rules, applied here to whole arrays:

* directed edges: pymatgen's neighbour list within ``atom_graph_cutoff``, in its order;
* undirected edges: a directed edge ``i → j`` (image ``n``) and its reverse ``j → i`` (image ``-n``) form one; an
  undirected edge is numbered when its first directed edge appears, and lists that edge first;
* the bond graph (angles): for every undirected edge no longer than ``bond_graph_cutoff``, and for each of its two
  directed edges ``d`` (from atom ``c``), every other directed edge ``e`` from ``c`` shorter than the cutoff, as the
  row ``[c, undirected(d), d, undirected(e), e]``; the rows go by undirected edge, then ``d``, then the edges of ``c``
  grouped by neighbour in the order each neighbour first appears, in their own order within a group.

The rows come out in CHGNet's order, so the model sums in the same order and the predictions are bit-identical
(``tests/test_chgnet_graph.py`` compares every tensor with CHGNet's on real and generated structures). Anything
outside the common case (an atom with no neighbour, a directed edge without its reverse, periodic images beyond
what the integer keys hold) is left to CHGNet's own converter, which handles and reports it as it always has.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["crystal_graph"]

_IMAGE_BITS = 10  # per image component in the edge keys: images within ±511 cells
_IMAGE_OFFSET = 1 << (_IMAGE_BITS - 1)


def _edge_keys(source: np.ndarray, target: np.ndarray, image: np.ndarray, n_atoms: int) -> np.ndarray:
    """One int64 per directed edge, equal for equal (source, target, image)."""
    key = source.astype(np.int64) * n_atoms + target
    for axis in range(3):
        key = (key << _IMAGE_BITS) | (image[:, axis] + _IMAGE_OFFSET)
    return key


def _reverse_edges(center: np.ndarray, neighbor: np.ndarray, image: np.ndarray, n_atoms: int) -> np.ndarray | None:
    """For each directed edge the index of its reverse; None where one has none."""
    keys = _edge_keys(center, neighbor, image, n_atoms)
    wanted = _edge_keys(neighbor, center, -image, n_atoms)
    order = np.argsort(keys, kind="stable")
    found = np.searchsorted(keys, wanted, sorter=order)
    found = np.minimum(found, len(keys) - 1)
    reverse = order[found]
    if not np.array_equal(keys[reverse], wanted):
        return None
    return reverse


def _grouped_by_neighbor(center: np.ndarray, neighbor: np.ndarray, n_atoms: int) -> np.ndarray:
    """Edge indices ordered by centre, then by the first appearance of their neighbour among the centre's edges,
    then by index: the order CHGNet walks a node's neighbours in."""
    index = np.arange(len(center))
    _, first, inverse = np.unique(center.astype(np.int64) * n_atoms + neighbor, return_index=True,
                                  return_inverse=True)
    return np.lexsort((index, first[inverse], center))


def _bond_graph(center, neighbor, distance, reverse, creators, undirected_of, cutoff, n_atoms) -> np.ndarray:
    """The angle rows ``[c, undirected(d), d, undirected(e), e]`` in CHGNet's order (module docstring)."""
    short = distance < cutoff
    walk = _grouped_by_neighbor(center, neighbor, n_atoms)
    walk = walk[short[walk]]  # each centre's short edges, in walking order
    counts = np.bincount(center[walk], minlength=n_atoms)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))

    kept = creators[distance[creators] <= cutoff]  # undirected edges within the cutoff, by their first edge
    d = np.stack([kept, reverse[kept]], axis=1).reshape(-1)  # the first edge, then its reverse
    c = center[d]
    per_query = counts[c]
    query = np.repeat(np.arange(len(d)), per_query)
    offset = np.arange(len(query)) - np.repeat(np.cumsum(per_query) - per_query, per_query)
    e = walk[starts[c[query]] + offset]
    keep = e != d[query]
    query, e = query[keep], e[keep]
    dq = d[query]
    return np.stack([center[dq], undirected_of[dq], dq, undirected_of[e], e], axis=1)


def crystal_graph(converter: Any, structure: Any, graph_id: str | None = None, mp_id: str | None = None):
    """The ``CrystalGraph`` ``converter(structure)`` gives, built with array operations; the converter itself for a
    structure outside the common case."""
    import torch
    from chgnet.graph.converter import datatype as float_type  # the converter's own float type
    from chgnet.graph.crystalgraph import CrystalGraph

    n_atoms = len(structure)
    center, neighbor, image, distance = structure.get_neighbor_list(
        r=converter.atom_graph_cutoff, sites=structure.sites, numerical_tol=1e-8
    )
    image = np.asarray(image, dtype=np.int64)
    if (len(center) == 0 or len(np.unique(center)) != n_atoms or np.abs(image).max() >= _IMAGE_OFFSET
            or n_atoms * n_atoms >= 1 << (63 - 3 * _IMAGE_BITS)):
        return converter(structure, graph_id=graph_id, mp_id=mp_id)
    reverse = _reverse_edges(center, neighbor, image, n_atoms)
    if reverse is None:
        return converter(structure, graph_id=graph_id, mp_id=mp_id)
    index = np.arange(len(center))
    creates = reverse > index  # the first of its pair: it numbers a new undirected edge
    creators = index[creates]
    number = np.cumsum(creates) - 1
    undirected_of = np.where(creates, number, number[reverse])
    bonds = _bond_graph(center, neighbor, distance, reverse, creators, undirected_of,
                        converter.bond_graph_cutoff, n_atoms)

    def ints(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int32))

    return CrystalGraph(
        atomic_number=torch.tensor([site.specie.Z for site in structure], dtype=torch.int32),
        atom_frac_coord=torch.tensor(structure.frac_coords, dtype=float_type, requires_grad=True),
        atom_graph=ints(np.stack([center, neighbor], axis=1)),
        neighbor_image=torch.tensor(image, dtype=float_type),
        directed2undirected=ints(undirected_of),
        undirected2directed=ints(creators),
        bond_graph=ints(bonds) if len(bonds) else torch.tensor([], dtype=torch.int32),
        lattice=torch.tensor(structure.lattice.matrix, dtype=float_type, requires_grad=True),
        graph_id=graph_id,
        mp_id=mp_id,
        composition=structure.composition.formula,
        atom_graph_cutoff=converter.atom_graph_cutoff,
        bond_graph_cutoff=converter.bond_graph_cutoff,
    )
