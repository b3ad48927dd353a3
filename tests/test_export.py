"""Trained Hamming adapters exported as PennyLane circuits reproduce every trained block.

Each row trains a float64 adapter a few steps away from the identity, exports it, and
compares the weight-k block of every exported circuit -- simulated by PennyLane
(``qml.matrix`` on the full ``2^n`` space) -- with the adapter's own block, to 1e-8.
"""
import pytest
import torch
from torch import nn

from qiadapters import HammingAdapter, compound, pennylane
from qiadapters.circuits.givens import givens_circuit

pytest.importorskip("pennylane")

ROWS = [
    dict(parametrization="cayley"),
    dict(parametrization="expm", orders=(1, 2, 3), blocks=1),
    dict(parametrization="cayley", share_blocks=True),
    dict(parametrization="circuit", layout="pyramid", gate="rbs"),
    dict(parametrization="circuit", layout="butterfly", gate="fbs"),
    dict(parametrization="circuit", layout="butterfly", gate="rbs"),  # not compound-exact
    dict(parametrization="circuit", layout="x", gate="fbs", share_blocks=True),
]


def trained(options, steps=5):
    torch.manual_seed(0)
    options = {"orders": (1, 2), "blocks": 2, **options}
    layer = HammingAdapter(nn.Linear(24, 24, dtype=torch.float64), **options)
    opt = torch.optim.Adam(layer.hamming.parameters(), lr=0.1)
    x, target = torch.randn(16, 24, dtype=torch.float64), torch.randn(16, 24, dtype=torch.float64)
    for _ in range(steps):
        opt.zero_grad()
        (layer(x) - target).square().mean().backward()
        opt.step()
    return layer


@pytest.mark.parametrize("options", ROWS, ids=lambda o: "-".join(map(str, o.values())))
def test_exported_circuits_reproduce_every_trained_block(options):
    layer = trained(options)
    rot = layer.hamming["default"]
    with torch.no_grad():
        blocks = rot.blocks(torch.float64)  # [(r, C(n,k), C(n,k)) per order]
    assert (blocks[0][0] - torch.eye(blocks[0].shape[-1], dtype=torch.float64)).abs().max() > 0.05
    exported = pennylane.export(layer)
    assert len(exported) == rot.block_layout.blocks
    for e in exported:
        for o, k in enumerate(e.orders):
            simulated = pennylane.hamming_block(e.circuit, e.theta, k)
            torch.testing.assert_close(simulated, blocks[o][e.block], atol=1e-8, rtol=0)


def test_givens_decomposition_is_exact_and_refuses_what_it_cannot_reach():
    torch.manual_seed(1)
    S = torch.randn(6, 6, dtype=torch.float64)
    Q = torch.linalg.matrix_exp(S - S.T)
    circuit, theta = givens_circuit(Q)
    assert circuit.n_params == 15 and circuit.nearest_neighbour
    for k in range(1, 6):
        torch.testing.assert_close(circuit.hamming_block(theta, k), compound(Q[None], k)[0],
                                   atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="det -1"):
        givens_circuit(Q * torch.tensor([-1.0, 1, 1, 1, 1, 1], dtype=torch.float64)[:, None])
    with pytest.raises(ValueError, match="not orthogonal"):
        givens_circuit(Q + 0.01)
    with pytest.raises(ValueError, match=r"expected a square \(n, n\) matrix"):
        givens_circuit(Q[:3])


def test_export_errors():
    with pytest.raises(TypeError, match="export takes a Hamming adapter layer"):
        pennylane.export(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"adapter_name='other' is not on this layer"):
        pennylane.export(HammingAdapter(nn.Linear(24, 24)), "other")
