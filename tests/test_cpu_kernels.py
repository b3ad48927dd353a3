"""The compiled CPU kernel of the order-2 compound (``qiadapters.circuits.kernels``,
``set_cpu_mode("on")``): the same minors as the slow reference and the same gradients as the
eager route, differentiable twice, chosen only where asked for, and a clean fallback where
it cannot be built."""
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import qiadapters as qa
from qiadapters.circuits import kernels
from qiadapters.circuits.compound import compound_by_minors
from qiadapters.circuits.kernels import dispatch, pair_minors_cpu


@pytest.fixture(scope="module")
def built():
    """The extension, built once for the module (about a minute the first time on a
    machine); the tests skip where no C++ compiler / ninja can build it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        module = pair_minors_cpu.load()
    if module is None:
        pytest.skip("the CPU kernel cannot be built here (no C++ compiler or ninja)")
    return module


@pytest.fixture
def cpu_on(built):
    with kernels.using_cpu("on"):
        yield


def _eager(U, k=2):
    with kernels.using_cpu("off"):
        return qa.compound(U, k)


def _assert_kernel_is_eager(U, dC):
    """The kernel's minors and their gradient along ``dC`` are the eager route's (1e-12)."""
    want = _eager(U)
    want_grad = torch.autograd.grad(want, U, dC)[0]
    with kernels.using_cpu("on"):
        got = qa.compound(U, 2)
        got_grad = torch.autograd.grad(got, U, dC)[0]
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [3, 4, 5, 8, 9])
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)])
def test_forward_is_every_2x2_minor(cpu_on, n, lead):
    g = torch.Generator().manual_seed(n)
    U = torch.randn(*lead, n, n, generator=g, dtype=torch.float64)
    out = qa.compound(U, 2)
    assert type(out.grad_fn).__name__ != "PairMinorsBackward"
    flat = U.reshape(-1, n, n)
    want = torch.stack([compound_by_minors(u, 2) for u in flat]).reshape(out.shape)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(3, 12), blocks=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_gradient_is_the_eager_routes(built, n, blocks, seed):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(blocks, n, n, generator=g, dtype=torch.float64, requires_grad=True)
    dC = torch.randn(blocks, n * (n - 1) // 2, n * (n - 1) // 2, generator=g,
                     dtype=torch.float64)
    _assert_kernel_is_eager(U, dC)


def test_float32_matches_float64(cpu_on):
    U = torch.randn(4, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(qa.compound(U.float(), 2).double(), qa.compound(U, 2),
                               atol=1e-5, rtol=0)


def test_gradcheck_and_double_backward(cpu_on):
    U = torch.randn(2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: qa.compound(u, 2), (U,))
    assert torch.autograd.gradgradcheck(lambda u: qa.compound(u, 2), (U,))


def test_a_non_contiguous_input(cpu_on):
    U = torch.randn(3, 6, 6, dtype=torch.float64)
    Ut = U.transpose(-1, -2)
    assert not Ut.is_contiguous()
    torch.testing.assert_close(qa.compound(Ut, 2), _eager(Ut.contiguous()), atol=1e-12, rtol=0)


def test_chosen_only_when_on_for_its_dtypes(built):
    U = torch.randn(2, 6, 6)
    previous = kernels.set_cpu_mode("off")
    try:
        assert not kernels.use_cpu_kernel(U)
        kernels.set_cpu_mode("on")
        assert kernels.use_cpu_kernel(U) and kernels.use_cpu_kernel(U.double())
        assert not kernels.use_cpu_kernel(U.bfloat16())
        assert not kernels.use_cpu_kernel(U.to("meta"))
        # large compounds stay on the eager row slabs: 3 blocks of n = 44 are 2.7M entries
        assert kernels.use_cpu_kernel(torch.empty(1, 44, 44))
        assert not kernels.use_cpu_kernel(torch.empty(3, 44, 44))
        out = qa.compound(U.bfloat16().requires_grad_(), 2)  # the eager route
        assert type(out.grad_fn).__name__ == "PairMinorsBackward"
    finally:
        kernels.set_cpu_mode(previous)


def test_an_adapter_trains_the_same_with_the_kernel(built, monkeypatch):
    """A Hamming layer (order 2, blocks of n = 8): outputs and gradients with the kernel on
    are the eager route's, and the kernel did build its blocks."""
    calls = []
    real = kernels.cpu_pair_minors
    monkeypatch.setattr(kernels, "cpu_pair_minors", lambda *a: calls.append(1) or real(*a))

    def step(mode):
        with kernels.using_cpu(mode):
            torch.manual_seed(0)
            layer = qa.HammingAdapter(torch.nn.Linear(64, 64), orders=(1, 2), block_size=8)
            with torch.no_grad():
                for p in layer.parameters():
                    if p.requires_grad:
                        p.normal_(0, 0.1)
            x = torch.randn(5, 64)
            y = layer(x)
            y.pow(2).sum().backward()
            return y.detach(), [p.grad.clone() for p in layer.parameters() if p.requires_grad]

    y_off, g_off = step("off")
    assert not calls
    y_on, g_on = step("on")
    assert calls
    torch.testing.assert_close(y_on, y_off, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_on, g_off):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_bad_mode_names_the_argument(monkeypatch):
    with pytest.raises(ValueError, match=r"mode='fast'.*valid: on, off"):
        kernels.set_cpu_mode("fast")
    monkeypatch.setitem(dispatch._state, "cpu_mode", None)
    monkeypatch.setenv("QIADAPTERS_CPU_KERNELS", "yes")
    with pytest.raises(ValueError, match="QIADAPTERS_CPU_KERNELS='yes'"):
        kernels.get_cpu_mode()


def test_where_it_cannot_be_built_it_warns_once_and_the_eager_route_runs(monkeypatch):
    import torch.utils.cpp_extension as ext

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(ext, "load_inline", no_compiler)
    monkeypatch.setitem(pair_minors_cpu._state, "module", None)
    monkeypatch.setitem(pair_minors_cpu._state, "tried", False)
    monkeypatch.setitem(dispatch._state, "cpu_mode", "on")
    U = torch.randn(2, 5, 5, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="could not be built.*no C\\+\\+ compiler"):
        assert not kernels.use_cpu_kernel(U)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = qa.compound(U, 2)  # no second warning, the eager route
    assert type(out.grad_fn).__name__ == "PairMinorsBackward"


def test_many_blocks_split_over_threads(built):
    """Enough blocks that both loops split into chunks over two threads: still exact."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        U = torch.randn(64, 8, 8, dtype=torch.float64, requires_grad=True)
        _assert_kernel_is_eager(U, torch.randn(64, 28, 28, dtype=torch.float64))
    finally:
        torch.set_num_threads(threads)
