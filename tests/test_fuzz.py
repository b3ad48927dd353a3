"""Property tests over random configurations (hypothesis).

Valid ones: construct, forward, backward, identity at init, merge == forward, unmerge
restores the base, save/load gives the same outputs.  Invalid ones: always the library's own
ValueError / TypeError with a message, never an error from inside torch.
"""
from __future__ import annotations

import math
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from qiadapters import GATES, LAYOUTS, AdapterModel, HammingConfig, get_adapter_model
from qiadapters.adapters.hamming.parametrizations import PARAMETRIZATIONS
from qiadapters.testing import perturb

SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _fits(width: int, blocks: int, orders: tuple[int, ...]) -> bool:
    """An independent statement of the size rule: some n >= max(2, max order) qubits with
    sum_k C(n, k) <= floor(width / blocks)."""
    n = max(2, max(orders))
    return sum(math.comb(n, k) for k in orders) <= width // blocks


@st.composite
def valid_case(draw):
    kind = draw(st.sampled_from(["linear", "conv2d"]))
    d_in, d_out = draw(st.integers(4, 24)), draw(st.integers(4, 24))
    side = draw(st.sampled_from(["output", "input"]))
    orders = tuple(sorted(draw(st.sets(st.integers(1, 3), min_size=1, max_size=2))))
    blocks = draw(st.integers(1, 4))
    assume(_fits(d_out if side == "output" else d_in, blocks, orders))
    options = dict(orders=orders, blocks=blocks, side=side,
                   layout=draw(st.sampled_from(list(LAYOUTS))),
                   gate=draw(st.sampled_from(list(GATES))),
                   parametrization=draw(st.sampled_from(list(PARAMETRIZATIONS))),
                   share_blocks=draw(st.booleans()))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return kind, d_in, d_out, dtype, options, draw(st.integers(0, 2 ** 16))


def _model(kind, d_in, d_out, dtype, seed):
    torch.manual_seed(seed)
    base = nn.Linear(d_in, d_out) if kind == "linear" else nn.Conv2d(d_in, d_out, 3, padding=1)
    x = torch.randn(2, d_in) if kind == "linear" else torch.randn(2, d_in, 5, 5)
    return nn.Sequential(base).to(dtype), x.to(dtype)


@settings(max_examples=25, **SETTINGS)
@given(valid_case())
def test_valid_configs_behave(case):
    kind, d_in, d_out, dtype, options, seed = case
    atol = 1e-4 if dtype == torch.float32 else 1e-10
    model, x = _model(kind, d_in, d_out, dtype, seed)
    with torch.no_grad():
        y0 = model(x)
    cfg = HammingConfig(target_modules=["0"], **options)
    am = get_adapter_model(model, cfg)
    assert torch.allclose(am(x), y0, atol=atol), "not the identity at init"
    perturb(am, scale=0.3, seed=seed + 1)
    y = am(x)
    assert y.shape == y0.shape and torch.isfinite(y).all()
    y.pow(2).sum().backward()
    grads = [p.grad for p in am.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    y = y.detach()
    # (no "the output changed" check: e.g. orders=(2,) on 2 qubits is one 1x1 block, [1])
    base = am.base_model[0].base_layer.weight.detach().clone()
    am.merge_adapter()
    assert torch.allclose(am(x), y, atol=atol), "merged output != adapter output"
    am.unmerge_adapter()
    assert torch.allclose(am.base_model[0].base_layer.weight, base, atol=atol)
    with tempfile.TemporaryDirectory() as tmp:
        am.save_pretrained(tmp)
        fresh, _ = _model(kind, d_in, d_out, dtype, seed)
        loaded = AdapterModel.from_pretrained(fresh, tmp)
        assert torch.allclose(loaded(x), y, atol=atol), "save/load changed the output"


def _not_in(valid):
    return st.text(min_size=0, max_size=8).filter(lambda s: s not in valid)


BAD_OPTIONS = st.one_of(
    st.fixed_dictionaries({"layout": _not_in(LAYOUTS)}),
    st.fixed_dictionaries({"gate": _not_in(GATES)}),
    st.fixed_dictionaries({"side": _not_in(("output", "input"))}),
    st.fixed_dictionaries({"parametrization": _not_in(PARAMETRIZATIONS)}),
    st.fixed_dictionaries({"orders": st.one_of(
        st.lists(st.integers(-5, 0), min_size=1, max_size=3),
        st.integers(1, 3).map(lambda k: (k, k)), st.just(()),
        st.lists(st.floats(allow_nan=True), min_size=1, max_size=2).map(tuple),
        st.integers(65, 10 ** 6).map(lambda k: (k,)))}),
    st.fixed_dictionaries({"blocks": st.one_of(st.integers(-10 ** 6, 0), st.floats(),
                                                 st.text(max_size=3), st.just(True))}),
    st.fixed_dictionaries({"block_size": st.integers(-10 ** 6, 0)}),
    st.fixed_dictionaries({"n_qubits": st.one_of(st.integers(-5, 1), st.floats())}),
    st.fixed_dictionaries({"share_blocks": st.one_of(st.integers(), st.text(max_size=3),
                                                     st.none())}),
    st.fixed_dictionaries({"target_modules": st.one_of(
        st.just(""), st.just([]), st.lists(st.integers(), min_size=1, max_size=2),
        st.just("fc(("))}),
    st.dictionaries(st.text(min_size=1, max_size=8).filter(
        lambda k: k not in HammingConfig.__dataclass_fields__), st.integers(), min_size=1,
        max_size=2),
)


@settings(max_examples=60, **SETTINGS)
@given(BAD_OPTIONS)
def test_invalid_options_raise_the_library_errors(options):
    with pytest.raises((ValueError, TypeError)) as info:
        HammingConfig(**options)
    assert str(info.value)


@settings(max_examples=30, **SETTINGS)
@given(kind=st.sampled_from(["linear", "conv2d"]), width=st.integers(2, 12),
       orders=st.sets(st.integers(1, 4), min_size=1, max_size=3).map(sorted).map(tuple),
       blocks=st.integers(1, 30), n_qubits=st.one_of(st.none(), st.integers(2, 8)))
def test_sizes_that_cannot_hold_a_block_are_refused_before_injection(kind, width, orders,
                                                                     blocks, n_qubits):
    model, x = _model(kind, width, width, torch.float32, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = HammingConfig(target_modules=["0"], orders=orders, blocks=blocks, n_qubits=n_qubits)
    try:
        am = get_adapter_model(model, cfg)
    except (ValueError, TypeError) as e:
        assert "module '0'" in str(e) and str(e)
        assert type(model[0]) in (nn.Linear, nn.Conv2d)  # not wrapped
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        return
    assert am(x).shape[0] == 2  # accepted: it must then work
