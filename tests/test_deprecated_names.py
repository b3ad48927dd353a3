"""Names that moved or were renamed keep working for one version, with a DeprecationWarning:
the test-suite helpers that left ``qiadapters.testing``, and the adapter layers' base module
argument, now ``base_layer`` everywhere (peft's name)."""
import os
import sys
import warnings

import pytest
import torch
from torch import nn

import qiadapters.testing as testing
from physics import PhysicsLayer
from qiadapters import HammingAdapter, HammingConfig, Mixture

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
import testing_utils  # noqa: E402


@pytest.mark.parametrize("name", ["HostSyncs", "HOST_SYNC_OPS", "exit_worker",
                                  "random_orthogonal"])
def test_moved_testing_helpers_warn_and_still_import(name):
    with pytest.warns(DeprecationWarning, match=f"qiadapters.testing.{name} is deprecated"):
        old = getattr(testing, name)
    assert callable(old) or old == testing_utils.HOST_SYNC_OPS
    with pytest.raises(AttributeError, match="no attribute 'no_such_helper'"):
        testing.no_such_helper  # noqa: B018


def test_deprecated_helpers_behave_as_the_suites():
    with pytest.warns(DeprecationWarning):
        old_orthogonal, OldHostSyncs = testing.random_orthogonal, testing.HostSyncs
    assert torch.equal(old_orthogonal(3, 5, seed=2), testing_utils.random_orthogonal(3, 5, seed=2))

    class Syncing(nn.Module):  # reads a value back on the host inside an adapter layer
        def forward(self, x):
            return x * float(x.detach().sum())

    layer = HammingAdapter(nn.Linear(16, 16))
    layer.base_layer.forward = Syncing().forward
    model = nn.Sequential(layer, Syncing())
    x = torch.randn(2, 16)
    for counter in (OldHostSyncs, testing_utils.HostSyncs):
        with counter(model) as found:
            model(x)
        assert found.ops == ["aten::_local_scalar_dense"]  # the base's, not the one outside
        with counter(model) as found:  # hooks removed on exit: a fresh count
            model[1](x)
        assert found.ops == []


def _mixture(**base):
    return Mixture(**base, experts=[HammingConfig(blocks=2)], router="token")


def _physics(**base):
    return PhysicsLayer(**base)


def _hamming(**base):
    return HammingAdapter(**base, blocks=2)


@pytest.mark.parametrize("make", [_hamming, _mixture, _physics])
def test_adapter_layers_take_base_layer_by_keyword(make):
    base = nn.Linear(16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        layer = make(base_layer=base)
    assert layer.base_layer is base
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(layer(x), base(x))  # an adapter starts as the identity


@pytest.mark.parametrize("make, old", [(_hamming, "linear"), (_mixture, "base")])
def test_old_base_keyword_warns_and_still_builds_the_same_layer(make, old):
    torch.manual_seed(0)
    new = make(base_layer=nn.Linear(16, 16))
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=f"{old}=...\\) is deprecated; pass base_layer="):
        kept = make(**{old: nn.Linear(16, 16)})
    assert type(kept) is type(new)
    for (name, a), (_, b) in zip(new.state_dict().items(), kept.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(TypeError, match=f"got {old}= and base_layer=, two names for one argument"):
        make(**{old: nn.Linear(16, 16)}, base_layer=nn.Linear(16, 16))
