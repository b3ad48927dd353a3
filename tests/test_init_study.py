"""The init study's switch (``init_std`` in a Hamming registry entry): the angles start from
``N(0, init_std^2)`` instead of zero, reproducibly per seed, only the skew generators move,
and the saved config is the zero-init twin's."""
import dataclasses
import os
import sys

import pytest
import torch

pytest.importorskip("transformers")

from benchmarks.common import registry  # noqa: E402
from qiadapters.adapters.hamming.parametrizations import SkewParametrization  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import minilm_shaped_bert  # noqa: E402

ROW = "hamming-12-bs32-angle-lr-init-std01"
TWIN = "hamming-12-bs32-angle-lr"


def _build(entry, seed=3):
    model = minilm_shaped_bert(1)
    torch.manual_seed(seed)  # what load_minilm(seed) leaves behind
    return entry.build(model)


def _angles(model):
    return torch.cat([m.weight.detach().flatten() for m in model.modules()
                      if isinstance(m, SkewParametrization)])


def test_the_row_starts_from_random_angles_of_the_given_std():
    model, _, record = _build(registry.get(ROW))
    angles = _angles(model)
    assert record["init_std"] == 0.01
    assert angles.numel() == 2 * 12 * 21  # query and value, 12 blocks of n = 7 each
    assert (angles != 0).all()
    assert abs(angles.std().item() - 0.01) < 0.002 and abs(angles.mean().item()) < 0.002


def test_the_start_is_reproducible_per_seed_and_differs_between_seeds():
    entry = registry.get(ROW)
    a, b, c = (_angles(_build(entry, seed)[0]) for seed in (3, 3, 4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zero_init_twin_is_the_identity_and_the_random_start_is_not():
    x = torch.randint(0, 64, (2, 8))
    base = minilm_shaped_bert(1).eval()
    with torch.no_grad():
        want = base(x).logits
        twin = _build(registry.get(TWIN))[0].eval()
        assert (_angles(twin) == 0).all()
        torch.testing.assert_close(twin(x).logits, want, atol=1e-5, rtol=0)
        rand = _build(registry.get(ROW))[0].eval()
        assert (rand(x).logits - want).abs().max() > 1e-4


def test_only_the_angles_move():
    """Every other trainable tensor of the row is the twin's, bit for bit."""
    model = _build(registry.get(ROW))[0]
    rand = dict(model.named_parameters())
    twin = dict(_build(registry.get(TWIN))[0].named_parameters())
    assert rand.keys() == twin.keys()
    moved = {name for name in rand if not torch.equal(rand[name], twin[name])}
    assert sum(rand[name].numel() for name in moved) == _angles(model).numel()


def test_the_saved_config_is_the_twins():
    assert (registry.adapter_config(registry.get(ROW)).to_dict()
            == registry.adapter_config(registry.get(TWIN)).to_dict())


@pytest.mark.parametrize("bad", [-0.1, "0.01", float("nan")])
def test_a_bad_std_is_refused_naming_the_key(bad):
    model = minilm_shaped_bert(1)
    with pytest.raises(ValueError, match="init_std"):
        registry.random_start(model, bad)


def test_a_model_without_skew_generators_is_refused():
    entry = registry.get("hamming-12-b3-circuit")
    entry = dataclasses.replace(entry, config={**entry.config, "init_std": 0.01})
    with pytest.raises(ValueError, match="init_std is set but"):
        _build(entry)
