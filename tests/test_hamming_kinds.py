"""Base kinds of the Hamming adapter against independent references: custom Linear
subclasses (the base's own forward, exact identity at init), transformers' Conv1D (weight
stored (in, out)), convolutions (channel mixing, hand-mixed F.conv weights), quantized bases
(bitsandbytes 8/4-bit, torchao int8: training, refused merges), errors and all-linear."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from qiadapters import HammingAdapter, HammingConfig, get_adapter_model
from qiadapters.adapters.hamming.kinds import BASE_KINDS, base_kind
from qiadapters.model.injection import match_targets
from qiadapters.testing import perturb, tiny_bert, tiny_gpt2


def perturbed(layer, scale=0.3, seed=0):
    with torch.no_grad():
        return perturb(layer, scale=scale, seed=seed)


class ShiftedLinear(nn.Linear):
    """Its own forward: ``x W^T + b + 3`` (a fixed shift, no parameter)."""

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + 3.0


# ------------------------------------------------------------------ the base's own forward
@pytest.mark.parametrize("side", ["output", "input"])
@pytest.mark.parametrize("bias", [True, False])
def test_custom_linear_subclass_runs_its_own_forward(side, bias):
    torch.manual_seed(0)
    base = ShiftedLinear(30, 29, bias=bias).double()
    layer = HammingAdapter(base, blocks=2, side=side)
    x = torch.randn(4, 3, 30, dtype=torch.float64)
    assert torch.equal(layer(x), base(x))  # exact at init (Cayley: D = I exactly)
    perturbed(layer)
    D = layer.delta_matrix("default")
    b = base.bias if bias else 0.0
    expected = (base(x) - b) @ D + b if side == "output" else base(x @ D)
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    assert "overrides forward" in layer.merge_blocker()
    with pytest.raises(TypeError, match=r"not mergeable.*ShiftedLinear overrides forward"):
        layer.merge()


class WideAccumulatorLinear(nn.Linear):
    """Accumulates in float64 and rounds once (as fused / quantized kernels that accumulate
    wider than their output): its output is not ``fl(x W^T) + b`` in float32."""

    def forward(self, x):
        return F.linear(x.double(), self.weight.double(), self.bias.double()).to(x.dtype)


def test_identity_at_init_is_bit_exact_even_where_subtracting_the_bias_rounds():
    """(f(x) - b) D + b computed naively is not f(x) at D = I when |b| >> |f(x)| (here the
    weight term cancels a large bias); the layer computes it as the correction
    f(x) + (u D - u), which is exactly 0 at D = I."""
    torch.manual_seed(0)
    base = WideAccumulatorLinear(16, 48)
    with torch.no_grad():
        base.bias.fill_(1e4)
        base.weight[:, 0] = -1e4
    x = torch.randn(5, 16)
    x[:, 0] = 1.0
    y = base(x)
    assert y.abs().max() < 100
    naive = (y - base.bias) + base.bias
    assert not torch.equal(naive, y)  # the rounding the correction avoids is real here
    for parametrization in ("cayley", "expm"):
        layer = HammingAdapter(base, parametrization=parametrization)
        assert torch.equal(layer(x), y), parametrization


# ------------------------------------------------------------------ transformers' Conv1D
def _conv1d(nx, nf):
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    base = Conv1D(nf, nx).double()
    with torch.no_grad():
        base.bias.normal_()
    return base


@pytest.mark.parametrize("side", ["output", "input"])
def test_conv1d_forward_and_merge_follow_the_transposed_weight(side):
    base = _conv1d(20, 36)
    W, b = base.weight.detach().clone(), base.bias.detach().clone()  # W: (in, out)
    layer = perturbed(HammingAdapter(base, blocks=2, side=side))
    assert layer.kind.name == "conv1d-transposed"
    D = layer.delta_matrix("default")
    assert D.shape == ((36, 36) if side == "output" else (20, 20))
    x = torch.randn(3, 4, 20, dtype=torch.float64)
    expected = (x @ W) @ D + b if side == "output" else (x @ D) @ W + b
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    layer.merge()
    torch.testing.assert_close(base.weight, W @ D if side == "output" else D @ W,
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-12)
    layer.unmerge()
    torch.testing.assert_close(base.weight, W, atol=1e-12, rtol=0)


def test_all_linear_on_gpt2_selects_every_conv1d_and_not_the_tied_head():
    model, _ = tiny_gpt2()
    names = match_targets(model, "all-linear")
    expected = [f"transformer.h.{i}.{m}" for i in range(2)
                for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    assert names == expected
    assert model.lm_head.weight is model.transformer.wte.weight  # the output embedding
    bert, _ = tiny_bert()
    assert "classifier" not in match_targets(bert, "all-linear")


# ------------------------------------------------------------------ convolutions
CONVS = {1: (nn.Conv1d, F.conv1d, (7,)), 2: (nn.Conv2d, F.conv2d, (6, 5)),
         3: (nn.Conv3d, F.conv3d, (4, 3, 5))}


@pytest.mark.parametrize("side", ["output", "input"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_convolution_mixes_channels_like_a_hand_mixed_weight(spatial, side):
    cls, conv, size = CONVS[spatial]
    torch.manual_seed(0)
    base = cls(12, 10, 3, stride=2, padding=1, padding_mode="circular").double()
    W, b = base.weight.detach().clone(), base.bias.detach().clone()  # (out, in, *kernel)
    layer = perturbed(HammingAdapter(base, blocks=1, side=side))
    D = layer.delta_matrix("default")
    if side == "output":  # every output channel c = sum_o y_o D[o, c]
        mixed = torch.einsum("oi...,oc->ci...", W, D)
    else:                 # the input channels are x D, so W acts as W D^T
        mixed = torch.einsum("oc...,ic->oi...", W, D)
    expected_fn = lambda x: conv(F.pad(x, (1, 1) * spatial, mode="circular"), mixed, b, stride=2)
    for x in (torch.randn(2, 12, *size, dtype=torch.float64),
              torch.randn(12, *size, dtype=torch.float64)):  # batched and unbatched
        torch.testing.assert_close(layer(x), expected_fn(x), atol=1e-12, rtol=1e-12)
    layer.merge()
    torch.testing.assert_close(base.weight, mixed, atol=1e-12, rtol=0)
    layer.unmerge()
    torch.testing.assert_close(base.weight, W, atol=1e-12, rtol=0)


@pytest.mark.parametrize("base", [
    nn.Conv2d(8, 24, 3), pytest.param("conv1d", id="Conv1D"), nn.Linear(8, 24)],
    ids=["Conv2d", "Conv1D", "Linear"])
def test_every_kind_traces_as_one_graph(base):
    base = _conv1d(8, 24).float() if base == "conv1d" else base
    torch.manual_seed(0)
    layer = HammingAdapter(base, blocks=1)
    layer.add_adapter("in", side="input", blocks=1)
    layer.set_adapter(["default", "in"])
    perturbed(layer, scale=0.1)
    x = torch.randn(2, 8, 5, 5) if isinstance(base, nn.Conv2d) else torch.randn(2, 5, 8)
    x.requires_grad_(True)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, layer(x), atol=1e-6, rtol=1e-6)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------------------------ errors
def test_unsupported_targets_name_the_module_its_class_and_the_kinds():
    model, _ = tiny_gpt2()
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(TypeError) as err:
        get_adapter_model(model, HammingConfig(target_modules=["c_attn", "wte"]))
    message = str(err.value)
    for part in ("module 'transformer.wte'", "torch.nn.modules.sparse.Embedding",
                 *(repr(k) for k in BASE_KINDS)):
        assert part in message, (part, message)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    assert all(p.requires_grad for p in model.parameters())  # untouched


def test_grouped_convolution_is_refused_before_anything_changes():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, groups=4))
    with pytest.raises(ValueError, match=r"module '0' \(Conv2d\): torch.nn.modules.conv.Conv2d "
                                         r"has groups=4.*valid: groups=1"):
        get_adapter_model(model, HammingConfig(target_modules=["0"], blocks=1))
    assert isinstance(model[0], nn.Conv2d) and model[0].weight.requires_grad


# ------------------------------------------------------------------ quantized bases
def _bnb(bits, linear):
    bnb = pytest.importorskip("bitsandbytes")
    if bits == 8:
        q = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, has_fp16_weights=False)
    else:
        q = bnb.nn.Linear4bit(linear.in_features, linear.out_features,
                              compute_dtype=torch.float32, quant_type="nf4")
    q.load_state_dict(linear.state_dict())
    return q.to("cpu")  # bitsandbytes quantizes when the module is moved


def _torchao(linear):
    quant = pytest.importorskip("torchao.quantization")
    holder = nn.Sequential(linear)
    quant.quantize_(holder, quant.Int8WeightOnlyConfig())
    return holder[0]


QUANTIZED = {"bnb-int8": lambda lin: _bnb(8, lin), "bnb-nf4": lambda lin: _bnb(4, lin),
             "torchao-int8": _torchao}


def _packed(module):
    """Copies of the base's stored data (quantized payloads compared as raw bytes)."""
    out = {}
    for n, t in list(module.named_parameters()) + list(module.named_buffers()):
        if type(t) not in (torch.Tensor, nn.Parameter):  # torchao: its inner tensors
            inner = t.__tensor_flatten__()[0] if hasattr(t, "__tensor_flatten__") else []
            out.update({f"{n}.{i}": getattr(t, i).detach().clone() for i in inner})
        else:
            out[n] = t.detach().clone()
    return out


@pytest.mark.parametrize("side", ["output", "input"])
@pytest.mark.parametrize("which", list(QUANTIZED))
def test_quantized_base_trains_through_its_own_forward_and_refuses_merging(which, side):
    torch.manual_seed(0)
    # bitsandbytes' CPU 4-bit kernels (0.50 and newer) pack the weight in tiles: out_features
    # a multiple of 32 and in_features a multiple of the quantization blocksize (64).  The base
    # stays in training mode, as under QLoRA: in eval mode a no-grad call repacks a 4-bit
    # weight into an inference-only layout that no gradient can pass through afterwards.
    base = QUANTIZED[which](nn.Linear(64, 96))
    layer = HammingAdapter(base, blocks=2, side=side)
    assert layer.kind.name == "linear"
    assert all(p.dtype == torch.float32 for p in layer.hamming.parameters())
    x = torch.randn(4, 3, 64)
    with torch.no_grad():
        assert torch.equal(layer(x), base(x))  # identity at init, the quantized forward
    stored = _packed(base)
    opt = torch.optim.Adam(layer.hamming.parameters(), lr=0.05)
    target = torch.randn(4, 3, 96, generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = (layer(x) - target).pow(2).mean()
        loss.backward()
        losses.append(float(loss))
        opt.step()
    assert losses[-1] < losses[0]
    with torch.no_grad():  # the trained map against the base's own forward and dense D
        D = layer.delta_matrix("default")
        b = base.bias.float()
        expected = (base(x) - b) @ D + b if side == "output" else base(x @ D)
        torch.testing.assert_close(layer(x), expected, atol=1e-4, rtol=1e-4)
    reason = layer.merge_blocker()
    assert "quantized" in reason and "unload()" in reason
    with pytest.raises(TypeError, match="not mergeable.*packed or quantized"):
        layer.merge()
    after = _packed(base)
    assert stored.keys() == after.keys() and stored
    assert all(torch.equal(stored[k], after[k]) for k in stored)  # nothing written


def test_merge_and_unload_names_the_quantized_module():
    pytest.importorskip("bitsandbytes")
    model = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 24))
    model[2] = _bnb(8, model[2])
    am = get_adapter_model(model.eval(), HammingConfig(target_modules=["0", "2"], blocks=1))
    with pytest.raises(TypeError, match=r"2: its weight is a bitsandbytes\.nn\.modules\."
                                        r"Int8Params.*unload\(\)"):
        am.merge_and_unload()
    assert am.unload() is model and isinstance(model[2], type(_bnb(8, nn.Linear(2, 2))))


def test_plain_bases_of_every_kind_are_mergeable():
    for base in (nn.Linear(8, 24), _conv1d(8, 24), nn.Conv2d(8, 24, 1)):
        layer = HammingAdapter(base, blocks=1)
        assert layer.merge_blocker() is None and base_kind(base).name == layer.kind.name
