"""An adapter layer stands in for the module it wraps: the base module's attributes
(``weight``, ``bias``, ``in_features``, a convolution's ``kernel_size`` ...) read through
the layer, and writes of them reach the base module, as code written for the plain module
expects (transformers' ViT reads ``projection.weight.dtype``; weight tying assigns
``lm_head.weight``)."""
import copy
import pickle

import pytest
import torch
from torch import nn

from qiadapters import HammingAdapter, HammingConfig, Mixture, MixtureConfig
from qiadapters.model import ModulesToSave
from qiadapters.testing import assert_valid_adapter, build, logits, perturb
from qiadapters.tiny_models import tiny_vit

try:
    from physics import PhysicsLayer
except ImportError:  # pragma: no cover
    PhysicsLayer = None

torch.set_num_threads(1)


def _conv1d():
    from transformers.pytorch_utils import Conv1D

    return Conv1D(24, 16)


LINEAR = ("weight", "bias", "in_features", "out_features")
CONV = ("weight", "bias", "in_channels", "out_channels", "kernel_size", "stride", "padding",
        "dilation", "groups", "padding_mode")
BASES = {
    "linear": (lambda: nn.Linear(16, 24), LINEAR),
    "conv1d-transformers": (_conv1d, ("weight", "bias", "nf")),
    "conv2d": (lambda: nn.Conv2d(6, 12, 3, stride=2, padding=1), CONV),
}
WRAPPERS = {
    "hamming": lambda base: HammingAdapter(base, orders=(1,), blocks=2),
    "mixture": lambda base: Mixture(base, [HammingConfig(orders=(1,), blocks=2),
                                           HammingConfig(orders=(1,), blocks=3)]),
    "modules_to_save": lambda base: ModulesToSave(base),
}


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("base_kind", BASES)
def test_reads_give_the_base_modules_attributes(base_kind, wrapper):
    make, names = BASES[base_kind]
    base = make()
    layer = WRAPPERS[wrapper](base)
    for name in names:
        assert getattr(layer, name) is getattr(base, name), name
    # the layer's own attributes stay its own
    assert layer.base_layer is base and isinstance(layer.training, bool)
    assert "weight" not in layer._parameters and "weight" not in dict(layer.named_parameters())


def test_physics_layer_reads_its_base():
    if PhysicsLayer is None:
        pytest.skip("physics is not installed")
    base = nn.Linear(16, 16)
    layer = PhysicsLayer(base, rank=2, grid="sequence")
    for name in LINEAR:
        assert getattr(layer, name) is getattr(base, name), name


def test_unknown_and_private_names_still_raise():
    layer = HammingAdapter(nn.Linear(16, 16), orders=(1,))
    with pytest.raises(AttributeError, match="'HammingAdapter' object has no attribute 'wieght'"):
        layer.wieght
    base = layer.base_layer
    base._private = 1  # private names of the base are not the layer's
    assert not hasattr(layer, "_private")


def test_writes_reach_the_base_module():
    base = nn.Linear(16, 16)
    layer = HammingAdapter(base, orders=(1,))
    tied = nn.Parameter(torch.randn(16, 16))
    layer.weight = tied  # what transformers' weight tying does on an output head
    assert base.weight is tied and layer.weight is tied
    assert "weight" not in layer._parameters and "weight" not in layer.__dict__
    layer.bias = None
    assert base.bias is None and layer.bias is None
    layer.in_features = 16
    assert "in_features" not in layer.__dict__
    # the layer's own attributes are written on the layer
    layer.disable_adapters = True
    assert layer.disable_adapters and not hasattr(base, "disable_adapters")


@torch.no_grad()
def test_a_layer_round_trips_through_pickle_and_deepcopy():
    base = nn.Conv2d(6, 12, 3, padding=1)
    layer = perturb(HammingAdapter(base, orders=(1,), blocks=2))
    x = torch.randn(2, 6, 5, 5)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        torch.testing.assert_close(clone(x), layer(x), atol=0, rtol=0)
        assert clone.weight is clone.base_layer.weight
        assert clone.kernel_size == (3, 3)


VIT_CONFIGS = {
    "hamming": HammingConfig(target_modules=["projection", "q_proj", "v_proj"], blocks=2),
    "mixture": MixtureConfig(target_modules=["projection", "q_proj"],
                             experts=[HammingConfig(orders=(1,)), HammingConfig(blocks=2)]),
}


@pytest.mark.parametrize("family", VIT_CONFIGS)
def test_vit_with_its_patch_projection_adapted(family):
    """ViT reads ``projection.weight.dtype`` in its forward: identity at init, training,
    save / load, merge (merged == unmerged) and pickling all go through it."""
    assert_valid_adapter(tiny_vit, VIT_CONFIGS[family],
                         checks=["identity", "merge", "save_load", "training", "pickle"],
                         mergeable=True)


@torch.no_grad()
def test_vit_projection_output_against_the_plain_rotation():
    """The adapted patch embedding equals the plain convolution's output, rotated by the
    adapter's dense ``D`` over the channels (bias removed and added back)."""
    am, inputs = build(tiny_vit, HammingConfig(target_modules=["projection"], blocks=2))
    perturb(am)
    layer = am.base_model.vit.embeddings.patch_embeddings.projection
    D = layer.delta_matrix("default")
    conv = layer.base_layer
    y = conv(inputs["pixel_values"])                 # (B, C, H, W)
    b = conv.bias.view(1, -1, 1, 1)
    expected = torch.einsum("bchw,cd->bdhw", (y - b).double(), D.double()).float() + b
    torch.testing.assert_close(layer(inputs["pixel_values"]), expected, atol=1e-5, rtol=1e-5)
    assert logits(am(**inputs)).shape == (2, 5)
