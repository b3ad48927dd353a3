"""``hotswap_adapter``: the live adapter becomes the saved one in place -- outputs equal to
``from_pretrained`` of that folder, the same parameter objects, no recompilation of a
``torch.compile``d model (dynamo's counters) -- and adapters of another layout are refused."""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import physics
from qiadapters import HammingConfig, get_adapter_model
from qiadapters.model import AdapterModel, hotswap_adapter
from qiadapters.testing import perturb
from qiadapters.tiny_models import tiny_bert, tiny_mlp

CONFIG = HammingConfig(target_modules=["fc1", "fc2"], orders=(1, 2), blocks=2,
                       modules_to_save=["head"])


def _saved(tmp_path, name: str, seed: int, config=CONFIG, factory=tiny_mlp) -> str:
    model, _ = factory()
    am = perturb(get_adapter_model(model, config), scale=0.3, seed=seed)
    am.save_pretrained(tmp_path / name)
    return str(tmp_path / name)


def test_swapped_model_equals_from_pretrained_of_the_folder(tmp_path):
    first, second = _saved(tmp_path, "a", 1), _saved(tmp_path, "b", 2)
    am = AdapterModel.from_pretrained(tiny_mlp()[0], first)
    x = tiny_mlp()[1]["x"]
    before = am(x)
    params = [id(p) for p in am.parameters()]
    hotswap_adapter(am, second)
    reference = AdapterModel.from_pretrained(tiny_mlp()[0], second)(x)
    torch.testing.assert_close(am(x), reference, atol=0, rtol=0)
    assert (before - reference).abs().max() > 1e-3  # the two adapters differ
    assert [id(p) for p in am.parameters()] == params  # in place


def test_a_compiled_model_does_not_recompile_after_the_swap(tmp_path):
    torch._dynamo.reset()
    first, second = _saved(tmp_path, "a", 1), _saved(tmp_path, "b", 2)
    am = AdapterModel.from_pretrained(tiny_mlp()[0], first)
    x = tiny_mlp()[1]["x"]
    counter = CompileCounter()
    compiled = torch.compile(am, backend=counter)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), am(x))
        frames = counter.frame_count
        hotswap_adapter(compiled, second)  # the compiled handle is what a server holds
        out = compiled(x)
    assert frames >= 1 and counter.frame_count == frames  # no recompilation
    reference = AdapterModel.from_pretrained(tiny_mlp()[0], second)(x)
    torch.testing.assert_close(out, reference, atol=1e-6, rtol=1e-6)


def test_physics_adapters_swap_too(tmp_path):
    config = physics.PhysicsConfig(target_modules=["query"], rank=4, grid="sequence")
    first = _saved(tmp_path, "a", 1, config, tiny_bert)
    second = _saved(tmp_path, "b", 2, config, tiny_bert)
    am = AdapterModel.from_pretrained(tiny_bert()[0], first)
    batch = tiny_bert()[1]
    hotswap_adapter(am, second)
    reference = AdapterModel.from_pretrained(tiny_bert()[0], second)(**batch).logits
    torch.testing.assert_close(am(**batch).logits, reference, atol=0, rtol=0)


def test_refusals_name_both_and_change_nothing(tmp_path):
    first = _saved(tmp_path, "a", 1)
    other_orders = _saved(tmp_path, "orders", 2, HammingConfig(
        target_modules=["fc1", "fc2"], orders=(1,), blocks=2, modules_to_save=["head"]))
    other_layers = _saved(tmp_path, "layers", 2, HammingConfig(
        target_modules=["fc1"], orders=(1, 2), blocks=2, modules_to_save=["head"]))
    am = AdapterModel.from_pretrained(tiny_mlp()[0], first)
    state = {k: v.clone() for k, v in am.state_dict().items()}
    with pytest.raises(ValueError, match=r"orders.*and the live adapter 'default' have "
                                         r"different layouts \(orders=\[1\] vs \[1, 2\]"):
        hotswap_adapter(am, other_orders)
    with pytest.raises(ValueError, match="does not fit the live adapter 'default': tensor "
                                         "'fc2.hamming.weight'"):
        hotswap_adapter(am, other_layers)
    with pytest.raises(ValueError, match="adapter_name='nope' does not exist"):
        hotswap_adapter(am, first, adapter_name="nope")
    for k, v in am.state_dict().items():
        assert torch.equal(v, state[k]), k
    am.merge_adapter()
    merged = {k: v.clone() for k, v in am.state_dict().items()}
    with pytest.raises(RuntimeError, match="is merged"):
        hotswap_adapter(am, first)
    for k, v in am.state_dict().items():
        assert torch.equal(v, merged[k]), k


def test_a_saved_layer_layout_other_than_the_live_one_is_refused(tmp_path):
    """The config matches but the file's per-layer record says another layout (blocks 15
    apart instead of 16: the same tensor shapes): refused, nothing copied."""
    import json

    from qiadapters.testing import TinyMLP

    def adapted():
        torch.manual_seed(0)
        return get_adapter_model(TinyMLP(hidden=48).eval(),
                                 HammingConfig(target_modules=["fc2"], blocks=3))

    perturb(adapted()).save_pretrained(tmp_path)
    path = tmp_path / "adapter_config.json"
    data = json.loads(path.read_text())
    data["layers"]["fc2"]["layout"]["block_size"] = 15
    path.write_text(json.dumps(data))
    live = adapted()
    before = {k: v.clone() for k, v in live.state_dict().items()}
    with pytest.raises(ValueError, match=r"'layers' record of layer 'fc2' says block_size=15"):
        hotswap_adapter(live, tmp_path)
    assert all(torch.equal(v, live.state_dict()[k]) for k, v in before.items())
