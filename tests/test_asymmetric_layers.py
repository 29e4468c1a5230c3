"""The asymmetric-unit networks' building blocks against written-out references: the edge-list message layer, the
categorical draws and the softmax the samplers share."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from plugins._asymmetric.draws import categorical, softmax  # noqa: E402
from plugins._asymmetric.layers import MessageLayer, fourier, pair_differences, real_pairs  # noqa: E402


def dense_reference(layer: MessageLayer, h, lattice, coords, node_mask, frequencies):
    """The layer's formula node by node: h_i + phi_h(h_i, mean over real j != i of phi_m(h_i, h_j, L, F(x_i - x_j)))."""
    b, n, hidden = h.shape
    out = torch.zeros_like(h)
    for g in range(b):
        for i in range(n):
            if not node_mask[g, i]:
                continue
            hi = layer.norm(h[g, i])
            messages = []
            for j in range(n):
                if j == i or not node_mask[g, j]:
                    continue
                hj = layer.norm(h[g, j])
                edge = fourier((coords[g, i] - coords[g, j])[None], frequencies)[0]
                first = layer.src(hi) + layer.dst(hj) + layer.lattice(lattice[g]) + layer.edge_in(edge)
                messages.append(layer.edge_out(first))
            agg = torch.stack(messages).mean(0) if messages else torch.zeros(hidden)
            out[g, i] = h[g, i] + layer.node(torch.cat([hi, agg]))
    return out


def test_edge_list_message_layer_equals_the_dense_formula_with_padding_and_a_lone_node():
    torch.manual_seed(0)
    hidden, frequencies = 16, 3
    layer = MessageLayer(hidden, edge_dim=2 * 3 * frequencies)
    node_mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, False, False]])
    h = torch.randn(3, 4, hidden)
    lattice = torch.randn(3, 6)
    coords = torch.rand(3, 4, 3)
    pairs = real_pairs(node_mask)
    assert len(pairs.receiver) == 4 * 3 + 2 * 1 + 0  # ordered pairs of distinct real nodes only
    with torch.no_grad():
        got = layer(h, lattice, fourier(pair_differences(coords, pairs), frequencies), pairs)
        want = dense_reference(layer, h, lattice, coords, node_mask, frequencies)
    real = node_mask[..., None].expand_as(got)
    assert torch.allclose(got[real], want[real], atol=1e-5)
    # the lone node (graph 2) aggregates nothing: its update is phi_h(h_i, 0), not a mean over padding
    with torch.no_grad():
        lone = h[2, 0] + layer.node(torch.cat([layer.norm(h[2, 0]), torch.zeros(hidden)]))
    assert torch.allclose(got[2, 0], lone, atol=1e-6)


def test_categorical_never_draws_a_zero_probability_class():
    probs = torch.tensor([[0.0, 0.3, 0.0, 0.7, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 2.5]])
    draws = categorical(probs.repeat(20_000, 1), torch.Generator().manual_seed(1)).reshape(20_000, 3)
    assert set(draws[:, 0].tolist()) == {1, 3}
    assert set(draws[:, 1].tolist()) == {0}
    assert set(draws[:, 2].tolist()) == {4}


def test_categorical_draws_with_the_given_frequencies_and_is_seeded():
    probs = torch.tensor([0.2, 0.8]).repeat(100_000, 1)
    draws = categorical(probs, torch.Generator().manual_seed(2))
    assert abs(draws.float().mean().item() - 0.8) < 0.01  # 4 standard errors
    again = categorical(probs, torch.Generator().manual_seed(2))
    assert torch.equal(draws, again)


def test_categorical_keeps_leading_shape():
    probs = torch.rand(4, 5, 7)
    assert categorical(probs, torch.Generator().manual_seed(0)).shape == (4, 5)


def test_softmax_equals_torch_including_masked_entries():
    x = torch.randn(6, 15, 13, dtype=torch.float64) * 5
    x[0, 0, :12] = float("-inf")
    x[1, :, 3] = float("-inf")
    got = softmax(x)
    assert torch.allclose(got, torch.softmax(x, dim=-1), atol=1e-12)
    assert got[0, 0, 12].item() == 1.0 and torch.all(got[1, :, 3] == 0)
