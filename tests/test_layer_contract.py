"""The layer contract itself: construction, devices and dtypes, the fold hook, mixture experts.

Every family is built three ways -- directly, through ``get_adapter_model`` and through
``add_adapter`` -- on a float64 base, on a ``meta``-device base, and on CUDA where a GPU is
present; its adapter tensors must follow the base's device and the library's dtype policy.
"""
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch
from torch import nn

from qiadapters import HammingAdapter, HammingConfig, Mixture, MixtureConfig, get_adapter_model
from qiadapters.adapters import AdapterConfig, AdapterLayer, AdapterParts, compute_dtype
from qiadapters.adapters.registry import registered
from qiadapters.adapters.layer import SharedBase
from qiadapters.model import ModulesToSave

try:
    from physics import PhysicsConfig, PhysicsLayer
except ImportError:  # pragma: no cover
    PhysicsConfig = PhysicsLayer = None

DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float64, torch.float32, torch.bfloat16]

# family name -> (layer class, options for the layer, config class); one base nn.Linear(24, 24)
FAMILIES = {
    "hamming": (HammingAdapter, dict(orders=(1, 2), blocks=2), HammingConfig),
    "hamming-circuit": (HammingAdapter, dict(parametrization="circuit", layout="brick"),
                        HammingConfig),
    "physics": (PhysicsLayer, dict(rank=4, grid="sequence"), PhysicsConfig),
    "mixture": (Mixture, dict(experts=[HammingConfig(orders=(1,)), HammingConfig(blocks=2)],
                              router="token"), MixtureConfig),
}


def _family(name):
    cls, options, config_cls = FAMILIES[name]
    if cls is None:
        pytest.skip("physics not importable")
    return cls, dict(options), config_cls


def _adapter_tensors(layer: AdapterLayer):
    for attr in layer.adapter_layer_names:
        yield from getattr(layer, attr).parameters()
        yield from getattr(layer, attr).buffers()


def _assert_placed(layer: AdapterLayer, device: str, base_dtype: torch.dtype):
    tensors = list(_adapter_tensors(layer))
    assert tensors, "the layer holds no adapter tensor"
    for t in tensors:
        assert t.device.type == device, f"adapter tensor on {t.device}, base on {device}"
        if t.is_floating_point():
            assert t.dtype == compute_dtype(base_dtype), (t.dtype, base_dtype)


class Net(nn.Module):
    def __init__(self, device, dtype):
        super().__init__()
        self.fc = nn.Linear(24, 24, device=device, dtype=dtype)
        self.head = nn.Linear(24, 3, device=device, dtype=dtype)

    def forward(self, x):
        return self.head(self.fc(x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_adapters_follow_the_base_device_and_dtype(family, dtype, device):
    cls, options, config_cls = _family(family)
    # directly, then a second adapter on the same layer
    layer = cls(nn.Linear(24, 24, device=device, dtype=dtype), **options)
    layer.add_adapter("second", **options)
    _assert_placed(layer, device, dtype)
    # through the model machinery, then a second adapter on the model
    am = get_adapter_model(Net(device, dtype), config_cls(target_modules=["fc"], **options))
    am.add_adapter("second", config_cls(target_modules=["fc"], **options))
    _assert_placed(am.base_model.fc, device, dtype)
    if device == "meta":
        return
    am.set_adapter(["default", "second"])
    x = torch.randn(2, 5, 24, device=device, dtype=dtype)
    with torch.no_grad():
        assert am(x).dtype == dtype
        tol = 1e-12 if dtype == torch.float64 else 2e-2
        torch.testing.assert_close(layer(x), layer.base_layer(x), atol=tol, rtol=tol)


def test_modules_to_save_copies_keep_the_base_dtype_and_device():
    model = Net("cpu", torch.bfloat16)
    am = get_adapter_model(model, HammingConfig(target_modules=["fc"], modules_to_save=["head"]))
    head = am.base_model.head
    assert isinstance(head, ModulesToSave)
    assert head.modules_to_save["default"].weight.dtype == torch.bfloat16


@pytest.mark.parametrize("family", list(FAMILIES))
def test_injected_layers_are_built_by_their_own_init(family):
    """No ``__new__`` bypass: an injected layer has the state its class's ``__init__`` sets."""
    cls, options, config_cls = _family(family)
    direct = cls(nn.Linear(24, 24), **options)
    am = get_adapter_model(Net("cpu", torch.float32), config_cls(target_modules=["fc"],
                                                                 **options))
    injected = am.base_model.fc
    assert type(injected) is cls
    assert set(vars(injected)) == set(vars(direct))


def test_empty_layer_and_parts_without_a_name():
    layer = HammingAdapter(nn.Linear(8, 8), adapter_name=None)
    assert layer.adapter_names == [] and not layer.base_layer.weight.requires_grad
    parts = HammingAdapter.build(nn.Linear(8, 8), orders=(1,), blocks=1)
    with pytest.raises(ValueError, match="parts were given without an adapter_name"):
        HammingAdapter(nn.Linear(8, 8), adapter_name=None, parts=parts)
    with pytest.raises(ValueError, match=r"adapter_name='a\.b' must be a non-empty string"):
        HammingAdapter(nn.Linear(8, 8), adapter_name="a.b")


def test_wrap_is_a_deprecated_empty_construction():
    with pytest.warns(DeprecationWarning, match=r"HammingAdapter\(base, adapter_name=None\)"):
        layer = HammingAdapter.wrap(nn.Linear(8, 8))
    assert type(layer) is HammingAdapter and layer.adapter_names == []


def test_old_base_module_names_warn_and_resolve():
    import qiadapters.adapters.base as old

    with pytest.warns(DeprecationWarning, match="moved to qiadapters.adapters.layer"):
        assert old.AdapterLayer is AdapterLayer
    with pytest.raises(AttributeError):
        old.not_a_name


def test_bad_options_raise_before_the_base_is_frozen():
    base = nn.Linear(8, 8)
    with pytest.raises(ValueError, match="blocks=5 gives block size"):
        HammingAdapter(base, blocks=5)
    assert base.weight.requires_grad


# ------------------------------------------------------------------ the fold hook
@dataclass
class ScaleConfig(AdapterConfig):
    """A toy mergeable family: ``y = (1 + s) f(x)`` for an affine ``f``; ``s = 0`` at init."""

    init: float = field(default=0.0, metadata={"help": "initial s"})
    adapter_type: ClassVar[str] = "test-scale"


class Scalar(nn.Module):
    def __init__(self, init):
        super().__init__()
        self.s = nn.Parameter(torch.full((), float(init)))


class ScaleLayer(AdapterLayer):
    """Implements only build, adapter_forward and fold; merging, unmerging, mixing and
    merging inside a mixture all come from the contract."""

    adapter_layer_names = ("scale",)

    @classmethod
    def build(cls, base_layer, *, init=0.0):
        return AdapterParts(modules={"scale": Scalar(init)}, settings={})

    def adapter_forward(self, x, adapter_names, *args, **kwargs):
        y = self.base_layer(x, *args, **kwargs)
        for a in adapter_names:
            y = (1 + self.scale[a].s) * y
        return y

    def fold(self, weights, adapter_names, inverse=False):
        factor = torch.stack([1 + self.scale[a].s.to(weights["weight"].dtype)
                              for a in adapter_names]).prod()
        factor = 1 / factor if inverse else factor
        return {name: factor * w for name, w in weights.items()}


@pytest.fixture(autouse=True, scope="module")
def _scale_registered():
    """The test family is registered while this module's tests run (no other test sees it)."""
    with registered(ScaleConfig, ScaleLayer):
        yield


def test_a_family_with_fold_merges_and_unmerges_generically():
    torch.manual_seed(0)
    layer = ScaleLayer(nn.Linear(6, 4), init=0.5)
    layer.add_adapter("b", init=-0.25)
    layer.set_adapter(["default", "b"])
    original = {n: p.detach().clone() for n, p in layer.base_layer.named_parameters()}
    x = torch.randn(3, 6)
    with torch.no_grad():
        y = layer(x)
        assert layer.mergeable
        layer.merge()
        torch.testing.assert_close(layer.base_layer(x), y)  # weight and bias both folded
        layer.unmerge()
    for n, p in layer.base_layer.named_parameters():
        torch.testing.assert_close(p, original[n])


def test_a_mixture_merges_any_family_through_fold():
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    mix = Mixture(base, [ScaleConfig(init=0.5), ScaleConfig(init=-0.3), HammingConfig(
        orders=(1,), blocks=1)], router="global")
    with torch.no_grad():
        mix.router["default"].logits.copy_(torch.tensor([0.2, -0.4, 0.7]))
        for p in mix.experts["default"][2].parameters():
            p.add_(0.3 * torch.randn_like(p))
    weight = base.weight.detach().clone()
    x = torch.randn(3, 6)
    with torch.no_grad():
        y = mix(x)
        mix.merge()
        torch.testing.assert_close(base(x), y, atol=1e-6, rtol=1e-6)
        mix.unmerge()
    assert torch.equal(base.weight, weight)  # restored bit for bit (the merge is no rotation)


class AddingLayer(AdapterLayer):
    """``y = f(x) + c``: a change of the output, but declared without ``fold``."""

    adapter_layer_names = ("shift",)

    @classmethod
    def build(cls, base_layer):
        return AdapterParts(modules={"shift": Scalar(0.0)}, settings={})

    def adapter_forward(self, x, adapter_names, *args, **kwargs):
        return self.base_layer(x) + sum(self.shift[a].s for a in adapter_names)


def test_layers_without_fold_are_not_mergeable():
    layer = AddingLayer(nn.Linear(4, 4))
    assert not layer.mergeable
    assert "do not change the base weights" in layer.merge_blocker()
    with pytest.raises(TypeError, match="not mergeable.*use unload"):
        layer.merge()


# ------------------------------------------------------------------ mixture experts
def test_mixture_experts_are_submodules_sharing_one_base():
    base = nn.Linear(24, 24)
    mix = Mixture(base, FAMILIES["mixture"][1]["experts"], router="token")
    experts = list(mix.experts["default"])
    assert all(isinstance(e, HammingAdapter) and isinstance(e.base_layer, SharedBase)
               for e in experts)
    assert all(e.base_layer.target is base for e in experts)
    # training mode propagates, the base is held (and saved) once
    mix.eval()
    assert not any(m.training for m in mix.modules())
    mix.train()
    assert all(m.training for m in mix.modules())
    keys = list(mix.state_dict())
    assert [k for k in keys if k.endswith("weight") and "base_layer" in k] == ["base_layer.weight"]
    assert sum(p.numel() for p in mix.parameters()) == (
        base.weight.numel() + base.bias.numel()
        + sum(p.numel() for e in experts for p in e.hamming.parameters())
        + sum(p.numel() for p in mix.router.parameters()))
    # device / dtype moves reach the experts through the module tree
    mix.double()
    assert all(p.dtype == torch.float64 for p in mix.parameters())
    assert experts[0].adapter_dtype == torch.float64


def test_mixture_expert_configs_need_no_target_modules():
    cfg = MixtureConfig(target_modules=["fc"], experts=[HammingConfig(), HammingConfig(blocks=2)])
    assert cfg.target_modules == ["fc"]
    assert MixtureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"experts\[1\]\.target_modules=\['x'\] differs"):
        MixtureConfig(target_modules=["fc"], experts=[HammingConfig(),
                                                      HammingConfig(target_modules=["x"])])


# ------------------------------------------------------------------ one graph
#: every router x top_k of a mixture (top-k must not read the routing on the host)
MIXTURE_ROUTES = {f"mixture-{router}-top{k}": dict(FAMILIES["mixture"][1], router=router,
                                                   top_k=k)
                  for router in ("global", "sample", "token") for k in (None, 1, 2)}


@pytest.mark.parametrize("family", list(FAMILIES) + list(MIXTURE_ROUTES))
def test_the_adapted_forward_is_one_graph(family):
    """Hot paths hold no host sync or Python-side data dependence: dynamo traces the adapted
    forward and backward of every family as one graph (``fullgraph=True``); aot_eager keeps
    it fast and checks the traced graph against eager."""
    from qiadapters.circuits import cache

    cls, options, _ = _family(family) if family in FAMILIES else (Mixture,
                                                                  MIXTURE_ROUTES[family], None)
    torch.manual_seed(0)
    torch._dynamo.reset()  # each row compiles a new layer: no recompile limit across rows
    cache.clear()  # a cold table cache: nothing may be built inside the trace
    layer = cls(nn.Linear(24, 24), **options)
    with torch.no_grad():
        for attr in layer.adapter_layer_names:
            for p in getattr(layer, attr).parameters():
                p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 5, 24, requires_grad=True)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x)  # first: the index tables are built at construction, not in the trace
    torch.testing.assert_close(out, layer(x), atol=1e-6, rtol=1e-6)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
