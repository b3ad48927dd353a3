"""``HammingConfig(recompute_base=True)``: the output side keeps ``x``, not ``f(x)``.

Against an independent dense reference (``(x W^T) D + b`` with the rotation's dense ``D``,
differentiated by autograd) and against the default route: outputs and gradients (angles,
scale, input) to float64 1e-12 over shapes and layouts, and bit for bit under autocast,
``torch.compile``, stacked adapters and GPT-2's ``Conv1D``.  What is saved for the backward,
read with ``saved_tensors_hooks``: the layer keeps its input (shared by query and value, as
LoRA's layers keep it) and no tensor of its output's size.  Merging, disabling, mixtures, the
input side (refused) and save / load (the field written only when on)."""
import json
import os
import sys
from math import comb

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from qiadapters import AdapterModel, HammingAdapter, HammingConfig, MixtureConfig
from qiadapters.testing import assert_valid_adapter, perturb
from qiadapters.tiny_models import tiny_bert

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import HostSyncs, saved_only_when_on  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "saved_by_0.3.2", "hamming")


def _layer(d_in, d_out, recompute, *, bias=True, seed=0, **options) -> HammingAdapter:
    """A float64 output-side layer with its parameters moved off the identity (the same
    values for both settings of ``recompute``)."""
    torch.manual_seed(seed)
    layer = HammingAdapter(nn.Linear(d_in, d_out, bias=bias).double(),
                           recompute_base=recompute, **options)
    with torch.no_grad():
        for p in layer.hamming.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


def _grads(layer, x, weight):
    """Output and the gradients of ``sum(weight * y)`` w.r.t. ``x`` and each parameter."""
    x = x.clone().requires_grad_()
    y = layer(x)
    params = [p for p in layer.parameters() if p.requires_grad]
    return (y.detach(), *torch.autograd.grad((weight * y).sum(), [x, *params]))


def _reference(layer, x, weight):
    """The same from the dense map written out: ``(x W^T) D diag(s) + b``."""
    rot = layer.hamming["default"]
    x = x.clone().requires_grad_()
    D = rot.dense(torch.float64)
    if rot.scale is not None:
        D = D * rot.scale[None, :]
    lin = layer.base_layer
    y = (x @ lin.weight.T) @ D + (0 if lin.bias is None else lin.bias)
    params = [p for p in layer.parameters() if p.requires_grad]
    return (y.detach(), *torch.autograd.grad((weight * y).sum(), [x, *params],
                                             allow_unused=True))


@settings(max_examples=25, deadline=None)
@given(d_in=st.integers(9, 40), d_out=st.integers(11, 40), block_size=st.sampled_from([6, 8, 11]),
       orders=st.sampled_from([(1,), (1, 2), (1, 2, 3)]),
       parametrization=st.sampled_from(["cayley", "expm", "circuit"]),
       lead=st.sampled_from([(5,), (2, 3), (1, 2, 4)]), bias=st.booleans(),
       scale=st.booleans(), seed=st.integers(0, 2**16))
def test_outputs_and_gradients_equal_the_default_and_the_dense_reference(
        d_in, d_out, block_size, orders, parametrization, lead, bias, scale, seed):
    opts = dict(orders=orders, block_size=block_size, parametrization=parametrization,
                scale=scale, bias=bias, seed=seed)
    if sum(comb(3, k) for k in orders) > block_size:  # order 3 needs blocks of 7
        opts["orders"] = (1, 2)
    plain, recomputed = _layer(d_in, d_out, False, **opts), _layer(d_in, d_out, True, **opts)
    x = torch.randn(*lead, d_in, dtype=torch.float64)
    weight = torch.randn(*lead, d_out, dtype=torch.float64)
    got, want, ref = (_grads(recomputed, x, weight), _grads(plain, x, weight),
                      _reference(plain, x, weight))
    assert len(got) == len(want) == len(ref) >= 3 + scale   # y, x and every parameter
    for g, w, r in zip(got, want, ref):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=0)
        torch.testing.assert_close(g, r, atol=1e-12, rtol=0)


def _bitwise(make, x, **run):
    """Output and gradients of ``make(False)`` and ``make(True)`` (equal for every option)."""
    out = []
    for recompute in (False, True):
        layer = make(recompute)
        f = torch.compile(layer, fullgraph=True, backend="aot_eager") if run.get("compile") \
            else layer
        xr = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=run.get("autocast", False)):
            y = f(xr)
        y.float().square().sum().backward()
        out.append([y.detach(), xr.grad] + [p.grad for p in layer.hamming.parameters()])
    return out


def _stacked(base):
    def make(recompute):
        torch.manual_seed(1)
        layer = HammingAdapter(base(), orders=(1, 2), block_size=8, recompute_base=recompute)
        layer.add_adapter("second", orders=(1,), block_size=10, scale=True)
        layer.set_adapter(["default", "second"])
        with torch.no_grad():
            for p in layer.hamming.parameters():
                p.add_(0.3 * torch.randn_like(p))
        return layer
    return make


@pytest.mark.parametrize("run", [{}, {"autocast": True}, {"compile": True}],
                         ids=["eager", "autocast-bf16", "compiled"])
def test_bit_for_bit_with_stacked_adapters_autocast_and_compile(run):
    torch.manual_seed(0)
    base = nn.Linear(24, 40)
    plain, recomputed = _bitwise(_stacked(lambda: base), torch.randn(3, 5, 24), **run)
    for a, b in zip(plain, recomputed):
        assert torch.equal(a, b)


def test_bit_for_bit_on_gpt2_conv1d_and_conv2d():
    from transformers.pytorch_utils import Conv1D
    torch.manual_seed(0)
    conv1d = Conv1D(40, 24)
    plain, recomputed = _bitwise(_stacked(lambda: conv1d), torch.randn(3, 5, 24))
    for a, b in zip(plain, recomputed):
        assert torch.equal(a, b)
    conv2d = nn.Conv2d(6, 20, 3, stride=2)

    def make(recompute):
        torch.manual_seed(1)
        return perturb(HammingAdapter(conv2d, orders=(1, 2), block_size=10,
                                      recompute_base=recompute))
    plain, recomputed = _bitwise(make, torch.randn(2, 6, 9, 9))
    for a, b in zip(plain, recomputed):
        assert torch.equal(a, b)


def test_a_model_call_builds_the_blocks_once_and_the_backward_not_again(monkeypatch):
    """In an :class:`AdapterModel` the batched build (one ``Q`` for the four layers) runs
    before the checkpoints, once per step for both settings, and the gradients are equal."""
    from qiadapters.adapters.hamming.parametrizations import Cayley
    built, orthogonal = [], Cayley.orthogonal

    def counted(self, *args, **kwargs):
        built.append(self)
        return orthogonal(self, *args, **kwargs)

    monkeypatch.setattr(Cayley, "orthogonal", counted)
    grads = []
    for recompute in (False, True):
        model, inputs = tiny_bert()
        am = perturb(AdapterModel(model, HammingConfig(target_modules=["query", "value"],
                                                       block_size=8, recompute_base=recompute)))
        am.train()
        built.clear()
        am(**inputs).logits.sum().backward()
        assert len(built) == 1, recompute
        grads.append({n: p.grad for n, p in am.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        assert torch.equal(grads[0][n], grads[1][n]), n


def test_no_host_reads_and_the_meta_device():
    layer = _layer(24, 24, True, block_size=8).float()
    with HostSyncs(layer) as found:
        y = layer(torch.randn(3, 24, requires_grad=True))
    assert found.ops == []
    y.sum().backward()
    meta = HammingAdapter(nn.Linear(24, 24, device="meta"), block_size=8, recompute_base=True)
    x = torch.randn(3, 24, device="meta", requires_grad=True)
    meta(x).sum().backward()
    assert x.grad.device.type == "meta" and meta.hamming["default"].weight.grad is not None


# ------------------------------------------------------------------ what is saved
class _Saved:
    """The tensors autograd saves while a module runs (``saved_tensors_hooks`` entered by a
    forward pre-hook and left by a forward hook), one list per module."""

    def __init__(self, modules: dict):
        self.saved = {name: [] for name in modules}
        for name, module in modules.items():
            module.register_forward_pre_hook(self._enter(name))
            module.register_forward_hook(self._leave(name))

    def _enter(self, name):
        def hook(module, args):
            def pack(t):
                self.saved[name].append(t)
                return t
            module._saving = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
            module._saving.__enter__()
        return hook

    @staticmethod
    def _leave(name):
        def hook(module, args, out):
            module._saving.__exit__(None, None, None)
        return hook

    def storages(self, names, least: int, model: nn.Module | None = None) -> dict:
        """Distinct storages (data pointer -> bytes) the ``names`` saved with at least
        ``least`` elements, but ``model``'s parameters (a frozen weight costs no memory)."""
        params = {p.untyped_storage().data_ptr() for p in model.parameters()} if model else ()
        found = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                 for n in names for t in self.saved[n] if t.numel() >= least}
        return {k: v for k, v in found.items() if k not in params}


@pytest.mark.parametrize("recompute", [False, True])
def test_one_layer_saves_its_input_not_its_output(recompute):
    """64 tokens, 48 -> 40 features: the default saves its output (one ``tokens x d_out``
    tensor, the map's :mod:`~qiadapters.circuits.about_point` keeps it), the recomputing
    layer exactly its input (nothing else of at least ``tokens x d_out`` elements)."""
    layer = _layer(48, 40, recompute, block_size=8)
    x = torch.randn(4, 16, 48, dtype=torch.float64, requires_grad=True)
    probe = _Saved({"layer": layer})
    y = layer(x)
    big = probe.storages(["layer"], 64 * 40)
    keeps = x if recompute else y
    assert big == {keeps.untyped_storage().data_ptr(): keeps.numel() * 8}
    y.square().sum().backward()   # the saved values still give the gradient
    assert x.grad is not None and layer.hamming["default"].weight.grad.abs().sum() > 0


def test_query_and_value_keep_their_shared_input_once_as_lora_does():
    """Per encoder layer of a BERT, the activation-sized tensors the query and value layers
    save: two (each layer's output, ``tokens x d``) by default, one (their shared input) with
    ``recompute_base``, the same one peft's LoRA r=8 layers save (read, as ours, with
    ``saved_tensors_hooks``; the frozen weights the base keeps for ``dx`` are left out).
    Batched builds are off under the hooks: each layer builds its own blocks."""
    from peft import LoraConfig, get_peft_model
    kept = {}
    for method in ("default", "recompute", "lora"):
        model, inputs = tiny_bert()
        if method == "lora":
            wrapped = get_peft_model(model, LoraConfig(r=8, target_modules=["query", "value"]))
        else:
            wrapped = AdapterModel(model, HammingConfig(
                target_modules=["query", "value"], block_size=8,
                recompute_base=method == "recompute"))
        attention = [m for n, m in wrapped.named_modules() if n.endswith("attention.self")]
        probe = _Saved({f"{i}.{p}": getattr(a, p) for i, a in enumerate(attention)
                        for p in ("query", "value")})
        wrapped(**inputs).logits.sum().backward()
        tokens, d = inputs["input_ids"].numel(), model.config.hidden_size
        kept[method] = [sorted(probe.storages([f"{i}.query", f"{i}.value"], tokens * d,
                                              model).values())
                        for i in range(len(attention))]
    size = tokens * d * 4
    assert len(kept["default"]) == model.config.num_hidden_layers == 2
    assert kept["default"] == [[size, size]] * 2
    assert kept["recompute"] == kept["lora"] == [[size]] * 2


# ------------------------------------------------------------------ states and files
def test_merge_disable_and_a_mixture_are_unchanged():
    layer = _layer(20, 24, True, block_size=8, scale=True)
    x = torch.randn(6, 20, dtype=torch.float64)
    y = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), y, atol=1e-12, rtol=0)
    layer.unmerge()
    layer.disable_adapters = True
    torch.testing.assert_close(layer(x), layer.base_layer(x), atol=0, rtol=0)
    layer.disable_adapters = False
    # in a mixture the base output is the mixture's (shared by its experts): same outputs
    outs = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model, inputs = tiny_bert()
        am = perturb(AdapterModel(model, MixtureConfig(target_modules=["query"], experts=[
            HammingConfig(block_size=8, recompute_base=recompute), HammingConfig(orders=(1,))])))
        am(**inputs).logits.sum().backward()
        outs.append([p.grad for p in am.parameters() if p.requires_grad])
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_the_contract():
    assert_valid_adapter(tiny_bert, HammingConfig(target_modules=["query", "value"],
                                                  block_size=8, recompute_base=True),
                         mergeable=True)


def test_saved_files_record_it_only_when_on(tmp_path):
    loaded = saved_only_when_on(tmp_path, "recompute_base")
    layers = [m for m in loaded.modules() if isinstance(m, HammingAdapter)]
    assert len(layers) == 4 and all(m.recompute_base["default"] for m in layers)


def test_a_file_without_the_field_loads_without_it():
    """A file saved by 0.3.2 (no such field) loads with ``recompute_base=False`` and computes
    what it computed then."""
    from safetensors.torch import load_file
    from qiadapters.tiny_models import tiny_mlp
    assert "recompute_base" not in json.loads(open(os.path.join(DATA,
                                                                "adapter_config.json")).read())
    model, inputs = tiny_mlp(0)
    am = AdapterModel.from_pretrained(model, DATA).eval()
    assert am.peft_config["default"].recompute_base is False
    layers = [m for m in am.modules() if isinstance(m, HammingAdapter)]
    assert layers and not any(m.recompute_base["default"] for m in layers)
    with torch.no_grad():
        out = am(**inputs)
    expected = load_file(os.path.join(DATA, "expected_logits.safetensors"))["logits"]
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_the_input_side_and_a_non_flag_are_refused_naming_it():
    with pytest.raises(ValueError, match=r"recompute_base=True is valid with side='output' "
                                         r"only \(got side='input'\)"):
        HammingConfig(target_modules=["query"], side="input", recompute_base=True)
    with pytest.raises(ValueError, match=r"recompute_base='yes' must be True or False"):
        HammingConfig(target_modules=["query"], recompute_base="yes")
    lin = nn.Linear(8, 8)
    with pytest.raises(ValueError, match=r"recompute_base=True is valid with side='output'"):
        HammingAdapter(lin, side="input", recompute_base=True)
    assert not isinstance(lin, HammingAdapter) and lin.weight.requires_grad
