"""HammingAdapter: block layout, parameter counts, the dense reference, orthogonality,
stacking, merging, precision and argument errors."""
import math
from itertools import product

import pytest
import torch
from torch import nn

from qiadapters import Circuit, HammingAdapter, compound_by_minors
from qiadapters.adapters.hamming import PARAMETRIZATIONS, plan_blocks
from qiadapters.adapters.hamming import parametrizations as P
from qiadapters.testing import perturb


GATE_COUNT = {  # docs/conventions.md, "Layouts"
    "pyramid": lambda n: n * (n - 1) // 2,
    "brick": lambda n: n * (n - 1) // 2,
    "x": lambda n: 2 * n - 3,
    "butterfly": lambda n: (n // 2) * int(math.log2(n)),
}


def perturbed(layer, scale=0.3, seed=0):
    with torch.no_grad():
        return perturb(layer, scale=scale, seed=seed)


# ------------------------------------------------------------------------- layout
@pytest.mark.parametrize("dim, orders, kwargs, expected", [
    (768, (1, 2), {"blocks": 3}, dict(n=22, blocks=3, pad=3, tail=0)),      # 22 + 231 = 253
    (768, (1, 2), {"blocks": 8}, dict(n=13, blocks=8, pad=5, tail=0)),      # 13 + 78 = 91
    (100, (1, 2), {}, dict(n=7, blocks=3, pad=5, tail=1)),                  # default blocks=3
    (100, (1,), {"block_size": 30}, dict(n=30, blocks=3, pad=0, tail=10)),
    (64, (1, 2, 3), {"blocks": 1}, dict(n=7, blocks=1, pad=1, tail=0)),     # 7 + 21 + 35
    (64, (1, 2), {"blocks": 2, "n_qubits": 5}, dict(n=5, blocks=2, pad=17, tail=0)),
])
def test_plan_blocks(dim, orders, kwargs, expected):
    lay = plan_blocks(dim, orders, **kwargs)
    assert dict(n=lay.n, blocks=lay.blocks, pad=lay.pad, tail=lay.tail) == expected
    assert lay.block_size * lay.blocks + lay.tail == dim


def test_plan_blocks_butterfly_uses_a_power_of_two():
    lay = plan_blocks(48, (1, 2), blocks=3, power_of_two=True)  # b = 16: max n = 5 -> 4
    assert (lay.n, lay.pad) == (4, 6)


# ------------------------------------------------------------------------- parameter counts
COUNT_CASES = [("cayley", "pyramid", "rbs"), ("expm", "pyramid", "rbs")] + [
    ("circuit", layout, gate) for layout, gate in product(GATE_COUNT, ("rbs", "fbs"))]


@pytest.mark.parametrize("parametrization, layout, gate", COUNT_CASES)
@pytest.mark.parametrize("share", [False, True])
def test_parameter_count_exact(parametrization, layout, gate, share):
    layer = HammingAdapter(nn.Linear(20, 64), orders=(1, 2), blocks=2, layout=layout, gate=gate,
                           parametrization=parametrization, share_blocks=share)
    rot = layer.hamming["default"]
    n, r = rot.block_layout.n, (1 if share else 2)
    assert n == (4 if layout == "butterfly" and parametrization == "circuit" else 7)
    if parametrization == "circuit":
        expected = 2 * r * GATE_COUNT[layout](n)
    else:
        expected = r * n * (n - 1) // 2
    assert sum(p.numel() for p in layer.parameters() if p.requires_grad) == expected
    assert rot.n_params == expected
    assert f"params={expected}" in repr(layer)


def test_extra_repr_names_the_layout():
    text = repr(HammingAdapter(nn.Linear(8, 40), blocks=2, parametrization="expm"))
    for item in ("n=5", "orders=(1, 2)", "blocks=2", "pad=5", "layout='pyramid'",
                 "parametrization='expm'", "params=20"):
        assert item in text, (item, text)


# ------------------------------------------------------------------------- dense reference
def reference_blocks(rot):
    """Hamming blocks per order, built independently of the layer's code path."""
    lay = rot.block_layout
    out = {k: [] for k in lay.orders}
    for i in range(lay.blocks):
        j = 0 if rot.share_blocks else i
        if isinstance(rot, P.CircuitPair):
            c = rot.circuit
            a, b = rot.theta[j].double(), rot.theta_mirror[j].double()
            for k in lay.orders:
                if c.compound_exact:
                    U = c.hamming_block(a, 1) @ c.hamming_block(b, 1).T
                    out[k].append(compound_by_minors(U, k))
                else:  # RBS butterfly: not a compound; the blocks themselves
                    out[k].append(c.hamming_block(a, k) @ c.hamming_block(b, k).T)
            continue
        n = lay.n
        S = torch.zeros(n, n, dtype=torch.float64)
        iu = torch.triu_indices(n, n, 1)
        S[iu[0], iu[1]] = rot.weight[j].double()
        S = S - S.T
        eye = torch.eye(n, dtype=torch.float64)
        Q = (eye - S) @ torch.inverse(eye + S) if rot.name == "cayley" else torch.matrix_exp(S)
        for k in lay.orders:
            out[k].append(compound_by_minors(Q, k))
    return out


def reference_dense(rot):
    lay, blocks = rot.block_layout, reference_blocks(rot)
    parts = []
    for i in range(lay.blocks):
        parts += [blocks[k][i] for k in lay.orders] + [torch.eye(lay.pad, dtype=torch.float64)]
    return torch.block_diag(*parts, torch.eye(lay.tail, dtype=torch.float64))


REF_CASES = [("cayley", "pyramid", "rbs"), ("expm", "pyramid", "rbs"),
             ("circuit", "pyramid", "rbs"), ("circuit", "brick", "fbs"),
             ("circuit", "butterfly", "rbs"), ("circuit", "butterfly", "fbs")]


@pytest.mark.parametrize("parametrization, layout, gate", REF_CASES)
@pytest.mark.parametrize("side", ["output", "input"])
@pytest.mark.parametrize("orders", [(1,), (1, 2), (1, 2, 3)])
def test_forward_equals_dense_reference(parametrization, layout, gate, side, orders):
    torch.manual_seed(0)
    linear = nn.Linear(30, 29).double()
    layer = HammingAdapter(linear, orders=orders, blocks=2, parametrization=parametrization,
                           layout=layout, gate=gate, side=side)
    perturbed(layer)
    D = reference_dense(layer.hamming["default"])
    assert torch.allclose(D @ D.T, torch.eye(D.shape[0], dtype=D.dtype), atol=1e-10)
    x = torch.randn(4, 3, 30, dtype=torch.float64)
    W, b = linear.weight, linear.bias
    expected = (x @ W.T) @ D + b if side == "output" else (x @ D) @ W.T + b
    torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(layer.delta_matrix("default"), D, atol=1e-10, rtol=1e-10)


def test_forward_never_builds_the_dense_matrix(monkeypatch):
    layer = perturbed(HammingAdapter(nn.Linear(16, 48), blocks=3))

    def forbidden(*args, **kwargs):
        raise AssertionError("dense D built in forward/merge")

    monkeypatch.setattr(P, "dense", forbidden)
    x = torch.randn(2, 16)
    y = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), y, atol=1e-5, rtol=1e-5)
    layer.unmerge()


# ------------------------------------------------------------------------- identity, orthogonality
@pytest.mark.parametrize("parametrization, layout, gate", REF_CASES)
def test_identity_at_init(parametrization, layout, gate):
    layer = HammingAdapter(nn.Linear(8, 40), blocks=2, parametrization=parametrization,
                           layout=layout, gate=gate)
    D = layer.delta_matrix("default")
    torch.testing.assert_close(D, torch.eye(40), atol=1e-6, rtol=0)


@pytest.mark.parametrize("parametrization", list(PARAMETRIZATIONS))
def test_orthogonal_after_1000_random_gradient_steps(parametrization):
    torch.manual_seed(0)
    layer = HammingAdapter(nn.Linear(8, 40), orders=(1, 2), blocks=2,
                           parametrization=parametrization, gate="fbs")
    params = list(layer.hamming.parameters())
    opt = torch.optim.Adam(params, lr=0.02)
    for _ in range(1000):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    assert max(p.abs().max() for p in params) > 1.0  # far from the identity
    D = layer.delta_matrix("default")
    assert (D @ D.T - torch.eye(40)).abs().max() < 1e-5
    assert (D.T @ D - torch.eye(40)).abs().max() < 1e-5


class _Blocks(nn.Module):
    def __init__(self, rot):
        super().__init__()
        self.rot = rot

    def forward(self):
        return self.rot.blocks(torch.float64)[0][0]


def test_identity_init_is_not_singular():
    """At D = I, Cayley and the mirrored circuit pair reach every rotation direction
    (rank n(n-1)/2); a single circuit at zero angles only the n-1 nearest-neighbour ones."""
    n = 6
    lay = plan_blocks(n * (n + 1) // 2, (1, 2), blocks=1)
    full = n * (n - 1) // 2
    cay = P.Cayley(lay)
    pair = P.CircuitPair(lay, layout="pyramid", gate="rbs")
    assert _rank(cay) == full
    assert _rank(pair) == full
    circuit = Circuit.pyramid(n)
    J = torch.autograd.functional.jacobian(lambda t: circuit.hamming_block(t, 1),
                                           torch.zeros(circuit.n_params, dtype=torch.float64))
    assert int(torch.linalg.matrix_rank(J.reshape(n * n, -1), atol=1e-8)) == n - 1


def _rot_q(rot, values):
    """Weight-1 block of block 0 as a function of the parameter tensors ``values``."""
    names = [n for n, _ in rot.named_parameters()]
    params = {f"rot.{n}": v for n, v in zip(names, values)}
    return torch.func.functional_call(_Blocks(rot), params, ())


def _rank(rot):
    values = tuple(p.detach().double() for p in rot.parameters())
    jac = torch.autograd.functional.jacobian(lambda *v: _rot_q(rot, v), values)
    J = torch.cat([j.reshape(j.shape[0] * j.shape[1], -1) for j in jac], 1)
    return int(torch.linalg.matrix_rank(J, atol=1e-8))


# ------------------------------------------------------------------------- stacking and merging
def test_stacked_adapters_apply_as_a_product_in_added_order():
    torch.manual_seed(0)
    linear = nn.Linear(12, 30).double()
    layer = HammingAdapter(linear, blocks=2)
    layer.add_adapter("second", blocks=1, parametrization="expm")
    layer.add_adapter("third", blocks=2, side="input", parametrization="circuit")
    layer.add_adapter("fourth", blocks=1, side="input")
    perturbed(layer)
    layer.set_adapter(["fourth", "second", "default", "third"])  # order of activation is ignored
    assert layer.active_adapters == ["default", "second", "third", "fourth"]
    D = {a: layer.delta_matrix(a) for a in layer.adapter_names}
    x = torch.randn(5, 12, dtype=torch.float64)
    W, b = linear.weight, linear.bias
    expected = (x @ D["third"] @ D["fourth"] @ W.T) @ D["default"] @ D["second"] + b
    torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=1e-10)
    W0 = W.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=1e-10)
    layer.unmerge()
    torch.testing.assert_close(linear.weight, W0, atol=1e-12, rtol=0)


def test_merge_bookkeeping_and_warnings():
    torch.manual_seed(0)
    linear = nn.Linear(16, 48)
    layer = perturbed(HammingAdapter(linear))
    W0, x = linear.weight.detach().clone(), torch.randn(3, 16)
    y = layer(x)
    assert not layer.merged
    layer.merge()
    assert layer.merged and layer.merged_adapters == ["default"]
    D = layer.delta_matrix("default")
    torch.testing.assert_close(linear.weight, D.T @ W0, atol=1e-6, rtol=1e-6)
    with pytest.warns(UserWarning, match="already merged"):
        layer.merge()
    torch.testing.assert_close(layer(x), y, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(linear.weight, W0, atol=1e-6, rtol=0)
    with pytest.warns(UserWarning, match="not merged"):
        layer.unmerge()
    layer.disable_adapters = True
    torch.testing.assert_close(layer(x), linear(x))


def test_input_side_merged_weight():
    torch.manual_seed(0)
    linear = nn.Linear(40, 6).double()
    layer = perturbed(HammingAdapter(linear, side="input", blocks=2))
    W0 = linear.weight.detach().clone()
    D = layer.delta_matrix("default")
    layer.merge()
    torch.testing.assert_close(linear.weight, W0 @ D.T, atol=1e-12, rtol=0)


def test_base_is_frozen_and_adapter_trainable():
    layer = HammingAdapter(nn.Linear(16, 48))
    assert not any(p.requires_grad for p in layer.base_layer.parameters())
    assert all(p.requires_grad for p in layer.hamming.parameters())


# ------------------------------------------------------------------------- precision
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("side", ["output", "input"])
def test_low_precision_base_weights(dtype, side):
    torch.manual_seed(0)
    linear = nn.Linear(16, 48)
    ref = perturbed(HammingAdapter(linear, side=side, blocks=2))
    x = torch.randn(4, 16)
    expected = ref(x)
    low = perturbed(HammingAdapter(nn.Linear(16, 48).to(dtype), side=side, blocks=2))
    low.base_layer.load_state_dict({k: v.to(dtype) for k, v in linear.state_dict().items()})
    assert all(p.dtype == torch.float32 for p in low.hamming.parameters())
    y = low(x.to(dtype))
    assert y.dtype == dtype and torch.isfinite(y).all()
    tol = 0.01 if dtype == torch.float16 else 0.05
    assert (y.float() - expected).norm() / expected.norm() < tol
    low.merge()
    assert torch.isfinite(low(x.to(dtype))).all()


def test_float64_base_is_computed_in_float64():
    layer = perturbed(HammingAdapter(nn.Linear(16, 48).double(), parametrization="expm"))
    D = layer.delta_matrix("default")
    assert D.dtype == torch.float64
    assert (D @ D.T - torch.eye(48, dtype=torch.float64)).abs().max() < 1e-12


# ------------------------------------------------------------------------- argument errors
@pytest.mark.parametrize("module, kwargs, error, match", [
    (nn.Embedding(4, 40), {}, TypeError, r"cannot wrap a torch.nn.modules.sparse.Embedding; "
                                          r"supported base kinds: 'linear'.*'conv1d-transposed'.*'conv'"),
    (nn.ConvTranspose2d(40, 40, 1), {}, TypeError, r"cannot wrap a torch.nn.modules.conv.ConvTranspose2d"),
    (nn.Conv2d(40, 40, 1, groups=2), {}, ValueError, r"Conv2d has groups=2.*valid: groups=1"),
    (nn.Linear(4, 5), {"blocks": 3}, ValueError, r"blocks=3 gives block size floor\(5 / 3\) = 1.*"
                                                  r"at least sum_k C\(2,k\) = 3"),
    (nn.Linear(4, 40), {"block_size": 2}, ValueError, r"block_size=2.*at least.*= 3"),
    (nn.Linear(4, 40), {"orders": (1, 1)}, ValueError, "duplicates"),
    (nn.Linear(4, 40), {"orders": (0, 1)}, ValueError, "contains 0"),
    (nn.Linear(4, 40), {"orders": ()}, ValueError, "empty"),
    (nn.Linear(4, 40), {"orders": (1, "2")}, ValueError, "must be an integer"),
    (nn.Linear(4, 40), {"orders": (1, 5), "n_qubits": 4}, ValueError, "n_qubits=4 is out of range"),
    (nn.Linear(4, 40), {"n_qubits": 9}, ValueError, r"n_qubits=9.*valid: 2 <= n_qubits <= 8"),
    (nn.Linear(4, 40), {"n_qubits": 5, "default_layout": "paper"}, ValueError,
     r"n_qubits=5.*valid: 2 <= n_qubits <= 4"),
    (nn.Linear(4, 40), {"blocks": 1, "block_size": 8}, ValueError, "not both"),
    (nn.Linear(4, 40), {"blocks": 0}, ValueError, "blocks=0 is out of range"),
    (nn.Linear(4, 40), {"layout": "ring"}, ValueError, r"layout='ring'.*'pyramid', 'brick'"),
    (nn.Linear(4, 40), {"gate": "cnot"}, ValueError, r"gate='cnot'.*'rbs', 'fbs'"),
    (nn.Linear(4, 40), {"side": "both"}, ValueError, r"side='both'.*'output', 'input'"),
    (nn.Linear(4, 40), {"parametrization": "givens"}, ValueError,
     r"parametrization='givens'.*'cayley', 'expm', 'circuit'"),
    (nn.Linear(4, 40), {"parametrization": "circuit", "layout": "butterfly", "n_qubits": 3},
     ValueError, "power of two"),
    (nn.Linear(4, 40), {"share_blocks": "yes"}, ValueError, "share_blocks"),
])
def test_bad_arguments(module, kwargs, error, match):
    before = [p.requires_grad for p in module.parameters()]
    with pytest.raises(error, match=match):
        HammingAdapter(module, **kwargs)
    assert [p.requires_grad for p in module.parameters()] == before  # untouched


def test_duplicate_adapter_name():
    layer = HammingAdapter(nn.Linear(4, 40))
    with pytest.raises(ValueError, match="'default' already exists"):
        layer.add_adapter("default")
