"""The Triton kernels (qiadapters/circuits/kernels/) against the eager route they replace.

Without a GPU the kernels run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``,
set here before the kernels are first imported), with a GPU on CUDA tensors.  Tiny sizes:
the interpreter runs every program in Python.  Checked: the order-2 compound and the
per-block product, forward and gradients, against the eager autograd functions (float32 to
1e-5, non-power-of-two sizes, strided and expanded operands); a Hamming layer's train step
with the kernels on equals it with them off, and the kernels really ran; the modes; the
eager route without ``triton``.
"""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import random_orthogonal, triton_kernels_interpretable  # noqa: E402

from qiadapters.circuits import kernels  # noqa: E402
from qiadapters.circuits.apply import per_block_product  # noqa: E402
from qiadapters.circuits.compound import PairMinors, pair_tables  # noqa: E402

HAS_TRITON = importlib.util.find_spec("triton") is not None
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (the kernels "
                                  "are optional: pip install triton, or PYTHONPATH to one)")
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def interpreted():
    """Triton's interpreter on a machine without CUDA: ``TRITON_INTERPRET=1`` while the kernel
    modules are imported (Triton reads it when a kernel is defined) and while the tests run
    (the ``"on"`` mode takes CPU tensors only under it); restored afterwards."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    before = os.environ.get("TRITON_INTERPRET")
    if not CUDA:
        if not triton_kernels_interpretable():
            pytest.skip("the kernels were imported outside Triton's interpreter")
        os.environ["TRITON_INTERPRET"] = "1"
    from qiadapters.circuits.kernels import block_product_triton, pair_minors_triton  # noqa: F401

    with kernels.using("on"):
        yield
    if before is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = before


def _grads(out, inputs, G):
    return torch.autograd.grad(out, inputs, G)


@needs_triton
@pytest.mark.parametrize("lead,n", [((1,), 2), ((3,), 3), ((2,), 5), ((2, 2), 6), ((1,), 7)])
def test_pair_minors_match_eager(interpreted, lead, n):
    """C_2(U) and dU of orthogonal blocks (any leading dims) against :class:`PairMinors`."""
    from qiadapters.circuits.kernels.pair_minors_triton import TritonPairMinors

    first, second, _ = (t.to(DEVICE) for t in pair_tables(n))
    r = int(torch.tensor(lead).prod())
    U = random_orthogonal(r, n, seed=n, dtype=torch.float32).reshape(*lead, n, n).to(DEVICE)
    U.requires_grad_(True)
    out, ref = TritonPairMinors.apply(U, first, second), PairMinors.apply(U, first, second)
    torch.testing.assert_close(out, ref, **TOL)
    G = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    torch.testing.assert_close(_grads(out, U, G)[0], _grads(ref, U, G)[0], **TOL)


@needs_triton
def test_pair_minors_gradcheck_float64(interpreted):
    from qiadapters.circuits.kernels.pair_minors_triton import TritonPairMinors

    first, second, _ = (t.to(DEVICE) for t in pair_tables(3))
    U = torch.randn(2, 3, 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: TritonPairMinors.apply(u, first, second), (U,))


@needs_triton
@pytest.mark.parametrize("lead,r,m,p,transpose", [
    ((5,), 2, 3, 3, False), ((2, 3), 3, 10, 10, True), ((7,), 1, 21, 21, False),
    ((4,), 2, 6, 15, False), ((3,), 2, 15, 6, True), ((70,), 2, 17, 17, False)])
def test_block_product_matches_eager(interpreted, lead, r, m, p, transpose):
    """``x B`` / ``x B^T`` per block, ``dx`` and ``dB``, against the eager ``bmm`` route; ``x``
    a strided slice of a wider tensor (as the per-order pieces are); 70 rows: two row tiles."""
    from qiadapters.circuits.kernels.block_product_triton import TritonBlockProduct

    g = torch.Generator().manual_seed(r * m + p)
    wide = torch.randn(*lead, r, m + 2, generator=g).to(DEVICE)
    wide.requires_grad_(True)
    x = wide[..., 1:m + 1]  # strided: rows of m + 2
    shape = (r, p, m) if transpose else (r, m, p)
    B = torch.randn(*shape, generator=g).to(DEVICE).requires_grad_(True)
    out = TritonBlockProduct.apply(x, B, transpose)
    with kernels.using("off"):
        ref = per_block_product(x, B, transpose)
    torch.testing.assert_close(out, ref, **TOL)
    G = torch.randn(ref.shape, generator=g).to(DEVICE)
    for a, b in zip(_grads(out, (wide, B), G), _grads(ref, (wide, B), G)):
        torch.testing.assert_close(a, b, **TOL)


@needs_triton
def test_block_product_expanded_blocks_and_double_backward(interpreted):
    """One block shared by ``r`` (``expand``, stride 0): its gradient is the sum over the
    blocks; a second derivative (``create_graph``) runs and equals the eager route's."""
    from qiadapters.circuits.kernels.block_product_triton import TritonBlockProduct

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, generator=g, dtype=torch.float32).to(DEVICE).requires_grad_(True)
    B0 = torch.randn(1, 5, 5, generator=g).to(DEVICE).requires_grad_(True)

    def second_derivative(product):
        y = product(x, B0.expand(3, 5, 5))
        (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return torch.autograd.grad(dx.sum(), (x, B0))

    with kernels.using("off"):
        ref = second_derivative(per_block_product)
    got = second_derivative(lambda a, b: TritonBlockProduct.apply(a, b, False))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, **TOL)


def _train_step(side, route):
    from qiadapters import AdapterModel, HammingConfig
    from qiadapters.adapters.hamming import set_route
    from qiadapters.testing import perturb

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 40), nn.Tanh(), nn.Linear(40, 24)).to(DEVICE)
    am = perturb(AdapterModel(model, HammingConfig(target_modules=["0", "2"], block_size=12,
                                                   side=side)), scale=0.3)
    if route == "fold":
        set_route(am, "fold")
    x = torch.randn(3, 5, 24, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    out = am(x)
    out.square().sum().backward()
    return out.detach(), {n: p.grad for n, p in am.named_parameters() if p.requires_grad}


@needs_triton
@pytest.mark.parametrize("side,route", [("output", "activation"), ("input", "activation"),
                                        ("output", "fold")])
def test_adapter_train_step_with_kernels_equals_eager(interpreted, monkeypatch, side, route):
    """A Hamming model's output and every adapter gradient with the kernels on equal them off
    (float32, 1e-5), and the kernels ran: the compound on every route, the product on the
    activation route (the fold route multiplies weights by ``D``, one ``bmm`` per group)."""
    calls = {"pair_minors": 0, "block_product": 0}
    for name in calls:
        real = getattr(kernels, name)

        def counted(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)
        monkeypatch.setattr(kernels, name, counted)
    with kernels.using("off"):
        ref = _train_step(side, route)
    assert calls == {"pair_minors": 0, "block_product": 0}
    out, grads = _train_step(side, route)
    assert calls["pair_minors"] >= 1
    assert calls["block_product"] >= (route == "activation")
    torch.testing.assert_close(out, ref[0], **TOL)
    assert grads.keys() == ref[1].keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref[1][name], **TOL, msg=name)


def test_modes():
    """``auto`` takes CUDA tensors only, ``off`` none, ``on`` CPU tensors only under Triton's
    interpreter; float32 only for the product; no tensor subclass; a bad mode names the valid
    ones; ``using`` restores the mode it found."""
    cpu = torch.zeros(2, 2)
    mode = kernels.get_mode()
    with kernels.using("auto"):
        assert not kernels.use_kernels(cpu)
    with kernels.using("off"):
        assert kernels.get_mode() == "off" and not kernels.use_kernels(cpu)
    assert kernels.get_mode() == mode
    with kernels.using("on"):
        interpret = os.environ.get("TRITON_INTERPRET") == "1"
        assert kernels.use_kernels(cpu) == (interpret and HAS_TRITON)
        assert not kernels.use_kernels(cpu.double())
        assert not kernels.use_kernels(cpu, torch.zeros(2, device="meta"))
        assert not kernels.use_kernels(cpu.as_subclass(_Sub))
    with pytest.raises(ValueError, match=r"mode='fast' is not a Triton kernel mode; valid: "
                                         r"auto, on, off"):
        kernels.set_mode("fast")
    assert kernels.block_product_supported(torch.zeros(4, 3, 5), torch.zeros(3, 5, 2))
    assert kernels.block_product_supported(torch.zeros(4, 3, 5), torch.zeros(3, 2, 5), True)
    assert not kernels.block_product_supported(torch.zeros(4, 3, 5), torch.zeros(3, 2, 5))
    assert not kernels.block_product_supported(torch.zeros(0, 3, 5), torch.zeros(3, 5, 5))
    assert not kernels.pair_minors_supported(torch.zeros(3, 65, 65))


class _Sub(torch.Tensor):
    pass


NO_TRITON = """
import sys, torch
sys.modules["triton"] = None  # import triton fails, as where it is not installed
from torch import nn
import qiadapters as qa
from qiadapters.circuits import kernels
kernels.set_mode("on")
model = nn.Sequential(nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 24))
am = qa.get_adapter_model(model, qa.HammingConfig(target_modules=["0", "2"], block_size=12))
am(torch.randn(2, 24)).sum().backward()
assert not kernels.available()
print("ok")
"""


def test_without_triton_the_eager_route_runs():
    """Where ``triton`` does not import, even the ``on`` mode runs the eager route."""
    env = dict(os.environ, TRITON_INTERPRET="1", QIADAPTERS_TRITON="on")
    proc = subprocess.run([sys.executable, "-c", NO_TRITON], env=env, capture_output=True,
                          text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_bad_environment_mode_is_named(monkeypatch):
    from qiadapters.circuits.kernels import dispatch

    monkeypatch.setenv("QIADAPTERS_TRITON", "always")
    monkeypatch.setitem(dispatch._state, "mode", None)
    with pytest.raises(ValueError, match="QIADAPTERS_TRITON='always' is not a Triton kernel "
                                         "mode; valid: auto, on, off"):
        kernels.get_mode()


def test_the_kernels_are_off_unless_asked_for(monkeypatch):
    """Until the kernels have run on a GPU, nothing turns them on but the user: the mode
    with neither set_mode nor the environment is ``off``."""
    from qiadapters.circuits.kernels import dispatch

    monkeypatch.delenv("QIADAPTERS_TRITON", raising=False)
    monkeypatch.setitem(dispatch._state, "mode", None)
    assert kernels.get_mode() == dispatch.DEFAULT_MODE == "off"
    monkeypatch.setenv("QIADAPTERS_TRITON", "auto")
    monkeypatch.setitem(dispatch._state, "mode", None)
    assert kernels.get_mode() == "auto"
