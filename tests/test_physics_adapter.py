"""PhysicsAdapter: zero delta at init, gradients, routers, spectral mixing, errors, compile."""
import math

import pytest
import torch
from torch import nn

import physics
from physics import PhysicsAdapter

ROUTERS = sorted(physics.ROUTERS)
DTYPES = [torch.float32, torch.float64]
# (tokens, grid, extra_tokens, expected grid): a 4x4 patch grid + CLS, and a 1D sequence
LAYOUTS = [(17, "auto", 1, (4, 4)), (10, "sequence", 0, (10,))]


def _adapter(dim=12, rank=3, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return PhysicsAdapter(dim, rank=rank, **kw).to(dtype)


def _activate(adapter, seed=1):
    """Give the zero-initialised up-projection (and the gates) non-zero weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        adapter.up.weight.copy_(torch.randn(adapter.up.weight.shape, generator=g))
        for p in (adapter.router.parameters() if adapter.router is not None else ()):
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
        for prior in adapter.priors.values():
            for p in prior.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return adapter


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("tokens,grid,extra,shape", LAYOUTS)
def test_delta_is_exactly_zero_at_init(dtype, router, tokens, grid, extra, shape):
    adapter = _adapter(dtype=dtype, router=router, grid=grid, extra_tokens=extra)
    x = torch.randn(2, tokens, 12, dtype=dtype)
    delta = adapter(x)
    assert delta.shape == x.shape and delta.dtype == dtype
    assert torch.equal(delta, torch.zeros_like(delta))
    assert adapter.grid_shape(tokens) == shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("tokens,grid,extra,shape", LAYOUTS)
def test_gradients_reach_every_parameter(dtype, router, tokens, grid, extra, shape):
    adapter = _activate(_adapter(dtype=dtype, router=router, grid=grid, extra_tokens=extra,
                                 entropy=0.1))
    x = torch.randn(2, tokens, 12, dtype=dtype)
    (adapter(x).square().mean() + adapter.aux_loss()).backward()
    for name, p in adapter.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("prior", ["heat", "wave", "poisson"])
def test_a_single_prior_has_no_router_and_gradients_reach_every_parameter(router, prior):
    """One prior's weight is 1: a router there would hold parameters no gradient reaches."""
    adapter = _activate(_adapter(router=router, priors=(prior,), grid="sequence", rank=4))
    assert adapter.router is None
    assert not any(".router." in name or name.startswith("router.")
                   for name, _ in adapter.named_parameters())
    x = torch.randn(2, 9, 12, dtype=torch.float64)
    (adapter(x).square().mean() + adapter.aux_loss()).backward()
    for name, p in adapter.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
    assert torch.equal(adapter.route(x), torch.ones(1, dtype=torch.float64))


def test_only_the_up_projection_has_gradient_at_init():
    adapter = _adapter(router="token", extra_tokens=1)
    adapter(torch.randn(2, 17, 12, dtype=torch.float64)).sum().backward()
    assert adapter.up.weight.grad.abs().max() > 0
    assert adapter.down.weight.grad.abs().max() == 0  # blocked by U = 0, as in LoRA


@pytest.mark.parametrize("router", ROUTERS)
def test_router_weights_are_a_distribution(router):
    adapter = _activate(_adapter(router=router, extra_tokens=1))
    w = adapter.route(torch.randn(3, 17, 12, dtype=torch.float64))
    expected = {"global": (3,), "sample": (3, 3), "token": (3, 16, 3)}[router]
    assert w.shape == expected
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(expected[:-1], dtype=torch.float64))


def _per_prior(adapter, g):
    """Each prior run separately with the solver functions on grid features g: (b, *grid, r)."""
    bnd = adapter.boundary
    out = {}
    for name, prior in adapter.priors.items():
        k = prior.constants()
        if name == "heat":
            out[name] = physics.heat(g, k["kappa"], k["t"], bnd)
        elif name == "wave":
            out[name] = physics.wave(g, prior.velocity * g, k["c"], k["t"], bnd)
        else:
            out[name] = k["gain"] * physics.poisson(g, bnd, prior.zero_mode, prior.eps)
    return out


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("tokens,grid,extra,shape", LAYOUTS)
def test_mixture_equals_the_per_prior_sum_computed_separately(router, tokens, grid, extra,
                                                              shape):
    """One forward + one inverse transform on the mixed multiplier (global, sample) and the
    spatial per-token mixture both equal Σ_p w_p · solver_p(g), solvers run one by one."""
    adapter = _activate(_adapter(router=router, grid=grid, extra_tokens=extra))
    x = torch.randn(2, tokens, 12, dtype=torch.float64)
    z = adapter.down(x)
    g = z[:, extra:].reshape(2, *shape, adapter.rank)
    w = adapter.route(x)
    parts = _per_prior(adapter, g)
    mixed = 0
    for p, name in enumerate(adapter.prior_names):
        if router == "global":
            wp = w[p]
        elif router == "sample":
            wp = w[:, p].reshape(2, *([1] * len(shape)), 1)
        else:
            wp = w[..., p].reshape(2, *shape, 1)
        mixed = mixed + wp * parts[name]
    y = torch.cat([z[:, :extra], mixed.reshape(2, -1, adapter.rank)], dim=1)
    torch.testing.assert_close(adapter(x), adapter.up(y * adapter.scale))


def test_extra_tokens_take_the_low_rank_path_unchanged():
    adapter = _activate(_adapter(router="sample", extra_tokens=2))
    x = torch.randn(2, 2 + 9, 12, dtype=torch.float64)
    delta = adapter(x)
    torch.testing.assert_close(delta[:, :2], adapter.up(adapter.down(x[:, :2]) * adapter.scale))
    # changing the extra tokens changes no grid token's delta except through the router input
    x2 = x.clone()
    x2[:, :2] += 1.0
    torch.testing.assert_close(adapter(x2)[:, 2:], delta[:, 2:])


def test_single_prior_heat_is_a_smoother_that_keeps_the_mean():
    adapter = _adapter(dim=4, rank=4, priors=("heat",), grid="sequence", bias=False)
    with torch.no_grad():
        adapter.down.weight.copy_(torch.eye(4))
        adapter.up.weight.copy_(torch.eye(4))
    x = torch.randn(3, 20, 4, dtype=torch.float64)
    y = adapter(x)
    torch.testing.assert_close(y.mean(1), x.mean(1))
    assert y.diff(dim=1).square().sum() < x.diff(dim=1).square().sum()


@pytest.mark.parametrize("tokens", [5, 9, 33])
def test_variable_sequence_lengths(tokens):
    adapter = _activate(_adapter(router="token", grid="sequence"))
    x = torch.randn(2, tokens, 12, dtype=torch.float64)
    assert adapter(x).shape == x.shape
    # the operator is per-sequence: a longer input does not change how a prefix is handled
    assert adapter.grid_shape(tokens) == (tokens,)


def test_aux_loss_formula_and_gradient():
    adapter = _adapter(router="global", balance=0.5, entropy=0.25)
    assert adapter.aux_loss().item() == 0.0
    x = torch.randn(2, 9, 12, dtype=torch.float64)
    adapter(x)
    assert abs(adapter.aux_loss().item()) < 1e-12  # uniform at init
    with torch.no_grad():
        adapter.router.logits.copy_(torch.tensor([40.0, 0.0, 0.0]))
    adapter(x)
    aux = adapter.aux_loss()
    assert aux.requires_grad and aux.ndim == 0
    expected = 0.5 * (3 - 1) + 0.25 * math.log(3)  # one prior takes everything
    assert aux.item() == pytest.approx(expected, rel=1e-6)
    w = physics.route_loss(torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64), 1.0, 0.0)
    assert w.item() == pytest.approx(3 * (0.04 + 0.09 + 0.25) - 1)


@pytest.mark.parametrize("boundary", sorted(physics.BOUNDARIES))
@pytest.mark.parametrize("zero_mode", sorted(physics.ZERO_MODES))
def test_every_boundary_and_poisson_rule_is_finite(boundary, zero_mode):
    adapter = _activate(_adapter(boundary=boundary, poisson_zero_mode=zero_mode, extra_tokens=1))
    out = adapter(torch.randn(2, 17, 12, dtype=torch.float64))
    assert torch.isfinite(out).all()


def test_fixed_grid_and_residual_wrapper():
    base = nn.Linear(12, 12).double()
    adapter = _adapter(grid=(3, 4), extra_tokens=1)
    x = torch.randn(2, 13, 12, dtype=torch.float64)
    torch.testing.assert_close(base(x) + adapter(x), base(x))
    with pytest.raises(ValueError, match=r"tokens=14.*grid=\(3, 4\)"):
        adapter(torch.randn(2, 14, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x.shape=\(2, 13, 5\)"):
        adapter(torch.randn(2, 13, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="extra_tokens=1"):
        adapter(torch.randn(2, 1, 12, dtype=torch.float64))


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=0), r"rank=0.*1 <= rank"),
    (dict(dim=0), "dim=0"),
    (dict(priors=("heat", "diffusion")), r"priors='diffusion'.*heat.*wave.*poisson"),
    (dict(priors=()), r"priors=\(\) is empty"),
    (dict(priors=("heat", "heat")), "duplicates"),
    (dict(router="expert"), r"router='expert'.*global.*sample.*token"),
    (dict(boundary="robin"), r"boundary='robin'.*neumann.*dirichlet.*periodic"),
    (dict(grid=(0, 4)), "grid=0"),
    (dict(grid="patches"), r"grid='patches'.*auto.*sequence"),
    (dict(extra_tokens=-1), "extra_tokens=-1"),
    (dict(poisson_zero_mode="ignore"), r"poisson_zero_mode='ignore'.*zero_mean.*screened"),
    (dict(kappa=0.0), "kappa=0.0"),
    (dict(poisson_eps=-1.0), "poisson_eps=-1.0"),
    (dict(balance=-0.1), "balance=-0.1"),
])
def test_bad_arguments_raise_before_any_state(kwargs, match, monkeypatch):
    built = []
    monkeypatch.setattr(nn.Module, "__init__",
                        lambda self, *a, **k: built.append(self) or None)
    args = dict(dim=12)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        PhysicsAdapter(**args)
    assert built == []


def test_float32_matches_float64():
    a64 = _activate(_adapter(router="token", extra_tokens=1))
    a32 = _activate(_adapter(router="token", extra_tokens=1, dtype=torch.float32))
    x = torch.randn(2, 17, 12, dtype=torch.float64)
    torch.testing.assert_close(a32(x.float()).double(), a64(x), atol=1e-4, rtol=1e-4)


def test_torch_compile_forward_equals_eager():
    """Traced by dynamo as one graph (fullgraph=True); aot_eager keeps the test fast (the
    inductor backend compiles C++ for ~30 s on two cores and was checked by hand)."""
    adapter = _activate(_adapter(router="token", extra_tokens=1, dtype=torch.float32))
    x = torch.randn(2, 17, 12)
    physics.bases.clear_cache()  # a cold cache: the bases are built inside the graph
    compiled = torch.compile(adapter, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), adapter(x))
    assert compiled.aux_loss().requires_grad


@pytest.mark.parametrize("grid", ["(L,)", "(H, W)", "square"])
def test_grid_strings_other_than_the_modes_are_rejected(grid):
    with pytest.raises(ValueError, match=r"choose one of \['auto', 'sequence'\] or a tuple"):
        physics.PhysicsAdapter(8, grid=grid)


@pytest.mark.parametrize("grid", ["auto", "sequence"])
def test_one_graph_across_token_counts(grid):
    """After a second token count torch.compile makes the token axis symbolic: the grid rule
    must stay traceable (no math.isqrt on a symbolic size) and equal to eager."""
    import math

    from physics.grids import infer_grid

    assert all(infer_grid(n) == ((math.isqrt(n),) * 2 if n >= 4 and math.isqrt(n) ** 2 == n
                                 else (n,)) for n in range(1, 3000))
    torch._dynamo.reset()
    adapter = _activate(_adapter(router="token", grid=grid, extra_tokens=1,
                                 dtype=torch.float32))
    compiled = torch.compile(adapter, backend="aot_eager", fullgraph=True)
    for tokens in (17, 10, 26, 37):
        x = torch.randn(2, tokens, adapter.dim)
        torch.testing.assert_close(compiled(x), adapter(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("router", ["token", "sample", "global"])
@pytest.mark.parametrize("grid, causal", [("auto", False), ("sequence", False),
                                          ("sequence", True)])
@pytest.mark.parametrize("masked", [False, True])
def test_an_empty_batch_gives_an_empty_delta_and_no_regulariser(router, grid, causal, masked):
    """Batch 0 is the empty slice of a batch: its delta is ``adapter(x)[:0]`` (shape
    ``(0, T, d)``), and no unit was routed, so the route regulariser is 0 (not a NaN mean)."""
    adapter = _activate(_adapter(router=router, grid=grid, causal=causal, extra_tokens=1))
    x = torch.randn(3, 17, 12, dtype=torch.float64)
    mask = torch.ones(3, 17) if masked else None
    expected = adapter(x, mask)[:0]
    out = adapter(x[:0], None if mask is None else mask[:0])
    assert out.shape == (0, 17, 12) and torch.equal(out, expected)
    assert adapter.aux_loss().item() == 0.0
