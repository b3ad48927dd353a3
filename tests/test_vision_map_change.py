"""The map-change diagnostic (benchmarks/vision/map_change.py): the maps it reads off an
adapted layer equal the merged weights that peft and qiadapters compute themselves, and its
three numbers are right on matrices whose answers are known."""
import copy
import math

import pytest
import torch
from torch import nn

from benchmarks.vision.map_change import adapted_maps, change


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(32, 32)
        self.v_proj = nn.Linear(32, 32)
        self.classifier = nn.Linear(32, 2)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList([Block(), Block()])


def _nudge(model):
    """Move every trainable adapter parameter off its identity start."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and "classifier" not in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_maps_of_a_peft_lora_model_are_its_merged_weights():
    from peft import LoraConfig, get_peft_model

    base = Tiny()
    maps0 = adapted_maps(base)
    assert sorted(maps0) == [f"layers.{i}.{t}" for i in (0, 1) for t in ("q_proj", "v_proj")]
    assert torch.allclose(maps0["layers.1.v_proj"], base.layers[1].v_proj.weight)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, target_modules=["q_proj",
                                                                                "v_proj"]))
    _nudge(model)
    maps = adapted_maps(model)
    merged = model.merge_and_unload()
    for key, w in maps.items():
        i, target = int(key.split(".")[1]), key.split(".")[2]
        reference = getattr(merged.layers[i], target).weight
        assert torch.allclose(w, reference, atol=1e-5), key
        assert not torch.allclose(w, maps0[key], atol=1e-3), key


def test_maps_of_a_hamming_model_are_its_merged_weights():
    import qiadapters

    base = Tiny()
    model = qiadapters.get_adapter_model(copy.deepcopy(base), qiadapters.HammingConfig(
        target_modules=["q_proj", "v_proj"], orders=(1, 2), block_size=8, scale=True))
    _nudge(model)
    maps = adapted_maps(model)
    merged = model.merge_and_unload()
    assert len(maps) == 4
    for key, w in maps.items():
        i, target = int(key.split(".")[1]), key.split(".")[2]
        assert torch.allclose(w, getattr(merged.layers[i], target).weight, atol=1e-5), key


def test_change_on_matrices_with_known_answers():
    w0 = torch.eye(4)
    doubled = change(w0, 2 * w0)  # dW = I: ||I|| / ||I|| = 1, four equal singular values
    assert doubled["rel_change"] == pytest.approx(1.0)
    assert doubled["top_sv"] == pytest.approx(1 / math.sqrt(4))
    assert doubled["eff_rank"] == pytest.approx(4.0)
    rank_one = torch.zeros(4, 4)
    rank_one[0, 1] = 3.0  # dW of rank one, norm 3 against ||I|| = 2
    out = change(w0, w0 + rank_one)
    assert out["rel_change"] == pytest.approx(1.5) and out["top_sv"] == pytest.approx(1.5)
    assert out["eff_rank"] == pytest.approx(1.0)
    assert change(w0, w0.clone()) == {"rel_change": 0.0, "top_sv": 0.0, "eff_rank": 0.0}
    # a rotation of W0 moves it by at most twice its norm
    rotation = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)))[0]
    assert change(w0, rotation @ w0)["rel_change"] <= 2.0 + 1e-9
