"""Hamming blocks kept between inference forwards: built once in eval mode, rebuilt after any
change of the parameters, never kept in training (or when a graph is wanted).

References are independent of the cache: a fresh layer that never ran (its state loaded from
the layer under test) and the dense ``D`` from ``blocks()`` (which never reads the cache)."""
import copy
import pickle

import pytest
import torch
from torch import nn

from qiadapters import HammingAdapter, HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import perturb, tiny_mlp

KINDS = {"cayley": dict(orders=(1, 2), blocks=2), "expm": dict(parametrization="expm"),
         "circuit": dict(parametrization="circuit", layout="x", orders=(1, 2)),
         "shared": dict(blocks=3, share_blocks=True)}


def counted(layer):
    """``layer`` with its adapter's ``operands()`` (what the forward builds: the blocks, or
    the weight-1 blocks they are compounds of) counting its calls in ``layer.builds``."""
    rot = layer.hamming["default"]
    build = rot.operands
    layer.builds = 0

    def operands(dtype=None):
        layer.builds += 1
        return build(dtype)

    rot.operands = operands
    return layer


def make(kind, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    layer = HammingAdapter(nn.Linear(24, 24, dtype=dtype), **KINDS[kind])
    with torch.no_grad():
        for p in layer.hamming.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return counted(layer)


def fresh_copy(layer, dtype=torch.float32):
    """A layer that never ran, holding ``layer``'s current state."""
    kind = next(k for k, o in KINDS.items() if _same(layer, o))
    other = HammingAdapter(nn.Linear(24, 24, dtype=dtype), **KINDS[kind])
    other.load_state_dict(layer.state_dict())
    return other.eval()


def _same(layer, options):
    rot = layer.hamming["default"]
    return (rot.name == options.get("parametrization", "cayley")
            and rot.share_blocks == options.get("share_blocks", False)
            and rot.block_layout == HammingAdapter(nn.Linear(24, 24), **options).hamming[
                "default"].block_layout)


def dense_reference(layer, x):
    """``(x W0^T) D + b`` with the dense ``D`` built by ``blocks()`` (no cache)."""
    base = layer.base_layer
    D = layer.delta_matrix("default").to(x.dtype)
    return (x @ base.weight.T) @ D + base.bias


def x_batch(dtype=torch.float32):
    return torch.randn(3, 4, 24, generator=torch.Generator().manual_seed(5)).to(dtype)


@pytest.mark.parametrize("kind", list(KINDS))
def test_eval_builds_once_training_always(kind):
    layer, x = make(kind).eval(), x_batch()
    with torch.no_grad():
        first, second = layer(x), layer(x)
        assert layer.builds == 1
        assert torch.equal(first, second)
        layer.train()
        layer(x), layer(x)
        assert layer.builds == 3  # training mode: rebuilt every time, even under no_grad
        torch.testing.assert_close(first, dense_reference(layer, x), atol=1e-5, rtol=1e-5)


def test_eval_with_gradients_on_trainable_parameters_builds_a_graph_every_time():
    layer, x = make("cayley").eval(), x_batch()
    with torch.no_grad():
        layer(x)
    assert layer.builds == 1
    layer(x).square().sum().backward()  # eval mode, grad enabled: a graph is wanted
    assert layer.builds == 2
    grad = layer.hamming["default"].weight.grad.clone()
    ref = fresh_copy(layer).train()
    ref(x).square().sum().backward()
    torch.testing.assert_close(grad, ref.hamming["default"].weight.grad)


def test_frozen_adapter_keeps_blocks_and_passes_input_gradients():
    """Blocks kept under inference_mode are not reused outside it (inference tensors cannot
    be saved for backward); a frozen adapter in eval mode reuses blocks with autograd on."""
    layer, x = make("cayley").eval(), x_batch().requires_grad_()
    layer.requires_grad_(False)
    with torch.inference_mode():
        layer(x.detach())
    layer(x).sum().backward()
    layer(x)
    assert layer.builds == 2
    xr = x.detach().clone().requires_grad_()
    dense_reference(layer, xr).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, atol=1e-5, rtol=1e-5)


def _add(layer):
    with torch.no_grad():
        layer.hamming["default"].parameters().__next__().add_(0.1)


def _load(layer):
    state = layer.state_dict()
    key = next(k for k in state if k.startswith("hamming."))
    state[key] = state[key] + 0.1
    layer.load_state_dict(state)


def _assign(layer):
    state = {k: v + 0.1 if k.startswith("hamming.") else v
             for k, v in layer.state_dict().items()}
    layer.load_state_dict(state, assign=True)


def _optimizer(**options):
    def step(layer):
        params = list(layer.hamming.parameters())
        opt = torch.optim.Adam(params, lr=0.05, **options)
        layer.train()
        layer(x_batch()).square().sum().backward()
        opt.step()
        layer.eval()
    return step


CHANGES = {"add_": _add, "load_state_dict": _load, "assign": _assign,
           "adam": _optimizer(foreach=False), "adam_foreach": _optimizer(foreach=True),
           "adam_fused": _optimizer(fused=True)}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("kind", ["cayley", "circuit"])
def test_any_parameter_change_invalidates(kind, change):
    layer, x = make(kind).eval(), x_batch()
    with torch.no_grad():
        before = layer(x)
    CHANGES[change](layer)
    with torch.no_grad():
        after = layer(x)
        expected = fresh_copy(layer)(x)
    assert not torch.allclose(after, before)
    assert torch.equal(after, expected)


def test_casts_invalidate():
    layer, x = make("cayley").eval(), x_batch()
    with torch.no_grad():
        layer(x)
        layer.double()
        y = layer(x.double())
        assert layer.builds == 2 and y.dtype == torch.float64
        torch.testing.assert_close(y, fresh_copy(layer, torch.float64)(x.double()), atol=0,
                                   rtol=0)
        layer.float()
        assert torch.equal(layer(x), fresh_copy(layer)(x))
        assert layer.builds == 3


def test_copies_pickles_and_state_dict_carry_no_cache():
    layer, x = make("circuit").eval(), x_batch()
    del layer.hamming["default"].operands  # the counter: a closure, not picklable
    keys = list(layer.state_dict())
    with torch.no_grad():
        y = layer(x)
    assert "_block_cache" in vars(layer.hamming["default"])
    assert list(layer.state_dict()) == keys
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert "_block_cache" not in vars(clone.hamming["default"])
        with torch.no_grad():
            assert torch.equal(clone(x), y)


def test_merged_inference_after_in_place_change_is_exact():
    cfg = HammingConfig(target_modules=["fc1", "fc2"], orders=(1, 2), blocks=2)
    am, inputs = tiny_adapter_model(cfg)
    with torch.no_grad():
        am(**inputs)  # blocks kept
        perturb(am, seed=4)  # in-place: the kept blocks are stale now
        expected = fresh_model(am, cfg)(**inputs)
        merged = am.merge_and_unload()
        torch.testing.assert_close(merged(**inputs), expected, atol=1e-5, rtol=1e-5)


def test_mixture_experts_keep_their_blocks():
    cfg = MixtureConfig(target_modules=["fc1"], router="token", top_k=1, experts=[
        HammingConfig(target_modules=["fc1"], orders=(1,)),
        HammingConfig(target_modules=["fc1"], parametrization="circuit")])
    am, inputs = tiny_adapter_model(cfg)
    experts = am.base_model.fc1.experts["default"]
    calls = []
    for e in experts:
        rot, build = e.hamming["expert"], e.hamming["expert"].operands
        rot.operands = lambda dtype=None, build=build: calls.append(1) or build(dtype)
    with torch.no_grad():
        y = am(**inputs)
        assert torch.equal(am(**inputs), y) and len(calls) == 2
        perturb(am, seed=9)
        torch.testing.assert_close(am(**inputs), fresh_model(am, cfg)(**inputs), atol=0, rtol=0)


def test_eval_forward_compiles_as_one_graph_without_the_cache():
    layer, x = make("cayley").eval(), x_batch()
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), dense_reference(layer, x), atol=1e-5,
                                   rtol=1e-5)


def tiny_adapter_model(cfg):
    model, inputs = tiny_mlp()
    torch.manual_seed(1)
    am = get_adapter_model(model, cfg)
    perturb(am)
    return am.eval(), inputs


def fresh_model(am, cfg):
    other = get_adapter_model(tiny_mlp()[0], cfg)
    other.load_state_dict(am.state_dict())
    return other.eval()
