"""Per-layer layouts: ``layout_pattern`` overrides a Hamming layer's layout by module name (as
peft's ``rank_pattern`` does its rank), and the saved file records every layer's resolved
layout, which loading builds the layer with -- so a later change of the library's default
layout does not change what a saved file means."""
import json

import pytest
import torch
from torch import nn

from qiadapters import AdapterModel, HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.adapters.hamming import layer as hamming_layer
from qiadapters.adapters.hamming import plan_blocks
from qiadapters.testing import perturb, tiny_bert, tiny_mlp

PATTERN = {r"layer\.0\..*query": {"blocks": 2}, "value": {"block_size": 12, "orders": [1]}}


def layouts(am):
    return {name: layer.hamming["default"].block_layout for name, layer in am.adapter_layers()}


def test_layout_pattern_sets_the_layout_of_the_layers_it_matches_as_peft_picks_its_key():
    from peft.utils.other import get_pattern_key
    model, _ = tiny_bert(0)
    cfg = HammingConfig(target_modules=["query", "value"], blocks=3, layout_pattern=PATTERN)
    got = layouts(get_adapter_model(model, cfg))
    assert len(got) == 4
    for name, lay in got.items():
        key = get_pattern_key(list(PATTERN), name)  # peft's own choice of key (name if none)
        entry = PATTERN.get(key, {})
        want = plan_blocks(32, entry.get("orders", (1, 2)), blocks=entry.get("blocks"),
                           block_size=entry.get("block_size"))
        if not entry:
            want = plan_blocks(32, (1, 2), blocks=3)
        assert lay == want, name
    assert got["bert.encoder.layer.0.attention.self.query"].blocks == 2
    assert got["bert.encoder.layer.1.attention.self.query"].blocks == 3


def test_each_layers_resolved_layout_is_recorded_and_a_new_default_does_not_change_a_file(
        tmp_path, monkeypatch):
    """The default layout (no blocks, no block_size) is resolved when saving; loading after
    the library's default changed builds the recorded layout and gives the same outputs."""
    model, inputs = tiny_mlp(0)
    am = perturb(get_adapter_model(model, HammingConfig(target_modules=["fc1", "fc2"])), 0.3)
    with torch.no_grad():
        expected = am.eval()(**inputs)
    am.save_pretrained(tmp_path)
    record = json.loads((tmp_path / "adapter_config.json").read_text())["layers"]
    for name, lay in layouts(am).items():
        assert record[name]["layout"] == {"blocks": lay.blocks, "n": lay.n,
                                          "block_size": lay.block_size, "orders": [1, 2],
                                          "side": "output", "parametrization": "cayley"}
    monkeypatch.setattr(hamming_layer, "default_blocks", lambda dim, smallest=1, default_layout="compact": 2)
    fresh, _ = tiny_mlp(0)
    assert layouts(get_adapter_model(tiny_mlp(0)[0], HammingConfig(target_modules=["fc2"])))[
        "fc2"].blocks == 2  # the default did change
    loaded = AdapterModel.from_pretrained(fresh, tmp_path)
    assert layouts(loaded) == layouts(am)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs), expected, rtol=1e-6, atol=1e-6)


def test_a_mixture_records_and_reloads_its_hamming_experts_layouts(tmp_path, monkeypatch):
    model, inputs = tiny_mlp(0)
    cfg = MixtureConfig(target_modules=["fc2"], experts=[
        HammingConfig(), HammingConfig(block_size=7, layout_pattern={"fc2": {"orders": [1]}})])
    am = perturb(get_adapter_model(model, cfg), 0.3)
    experts = [am.fc2.expert_layer("default", i).hamming["expert"].block_layout for i in (0, 1)]
    assert experts[1] == plan_blocks(48, (1,), block_size=7)
    with torch.no_grad():
        expected = am.eval()(**inputs)
    am.save_pretrained(tmp_path)
    monkeypatch.setattr(hamming_layer, "default_blocks", lambda dim, smallest=1, default_layout="compact": 2)
    loaded = AdapterModel.from_pretrained(tiny_mlp(0)[0], tmp_path)
    assert [loaded.fc2.expert_layer("default", i).hamming["expert"].block_layout
            for i in (0, 1)] == experts
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs), expected, rtol=1e-6, atol=1e-6)


def _edit(folder, path, **fields):
    cfg = folder / "adapter_config.json"
    data = json.loads(cfg.read_text())
    data["layers"][path]["layout"].update(fields)
    cfg.write_text(json.dumps(data))


def untouched(model: nn.Module) -> bool:
    return "Hamming" not in repr(model) and not any(
        m._forward_pre_hooks or m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("fields, match", [
    ({"orders": [1]}, r"'layers' record of layer 'fc1' says orders=\[1\], the config gives "
                      r"orders=\[1, 2\]"),
    ({"side": "input"}, r"layer 'fc1' says side='input', the config gives side='output'"),
    ({"blocks": 2}, r"layer 'fc1' says blocks=2, but that layout on this layer gives blocks=3"),
    ({"n": 9}, r"module 'fc1' \(Linear\).*n_qubits=9 needs"),
    ({"n": "4"}, r"'layers' entry 'fc1' has layout=.*must be a dict of"),
])
def test_a_record_inconsistent_with_the_config_or_the_layer_is_refused_naming_file_layer_field(
        tmp_path, fields, match):
    am = perturb(get_adapter_model(tiny_mlp(0)[0], HammingConfig(target_modules=["fc1", "fc2"],
                                                                blocks=3)))
    am.save_pretrained(tmp_path)
    _edit(tmp_path, "fc1", **fields)
    model = tiny_mlp(0)[0]
    with pytest.raises(ValueError, match=match) as info:
        AdapterModel.from_pretrained(model, tmp_path)
    assert "adapter_config.json" in str(info.value) and untouched(model)


@pytest.mark.parametrize("pattern, match", [
    ({"nothere": {"blocks": 2}}, r"layout_pattern key 'nothere' matches no adapted module"),
])
def test_a_layout_pattern_key_that_matches_no_adapted_module_is_refused(pattern, match):
    model, _ = tiny_mlp(0)
    with pytest.raises(ValueError, match=match):
        get_adapter_model(model, HammingConfig(target_modules=["fc1"], layout_pattern=pattern))
    assert untouched(model)


@pytest.mark.parametrize("pattern, match", [
    ({"fc1": {"rank": 2}}, r"layout_pattern\['fc1'\]=\{'rank': 2\} must be a non-empty dict "
                           r"of layout fields from \['blocks', 'block_size', 'n_qubits', "
                           r"'orders'\]; unknown: \['rank'\]"),
    ({"fc1": {"blocks": 0}}, r"blocks"),
    ({"(": {"blocks": 2}}, r"layout_pattern key '\(' is not a valid regex"),
    ([("fc1", 2)], r"layout_pattern=.* must be a non-empty dict"),
])
def test_a_malformed_layout_pattern_is_refused_by_the_config(pattern, match):
    with pytest.raises(ValueError, match=match):
        HammingConfig(target_modules=["fc1"], layout_pattern=pattern)


def test_resuming_weights_into_a_live_adapter_of_another_layout_is_refused(tmp_path):
    """blocks=3 and block_size=15 on 48 features: three blocks of n = 5 either way, so the
    tensors have the same shapes, but the blocks sit at other offsets (16 vs 15 apart)."""
    from qiadapters.integrations.transformers import load_adapter_weights
    saved = perturb(get_adapter_model(tiny_mlp(0)[0], HammingConfig(target_modules=["fc2"],
                                                                   blocks=3)))
    saved.save_pretrained(tmp_path)
    live = get_adapter_model(tiny_mlp(0)[0], HammingConfig(target_modules=["fc2"],
                                                         block_size=15))
    before = {k: v.clone() for k, v in live.state_dict().items()}
    with pytest.raises(ValueError, match=r"adapter_config.json'?: 'layers' record of layer "
                                         r"'fc2' says block_size=16, adapter 'default' here "
                                         r"has block_size=15"):
        load_adapter_weights(live, tmp_path)
    assert all(torch.equal(v, live.state_dict()[k]) for k, v in before.items())
    same = get_adapter_model(tiny_mlp(0)[0], HammingConfig(target_modules=["fc2"], blocks=3))
    assert load_adapter_weights(same, tmp_path) == ["default"]


def test_layout_pattern_round_trips_through_the_saved_config(tmp_path):
    from qiadapters.adapters.config import AdapterConfig
    cfg = HammingConfig(target_modules=["fc1", "fc2"], layout_pattern={"fc2": {"orders": (1,)}})
    assert cfg.layout_pattern == {"fc2": {"orders": [1]}}
    assert AdapterConfig.from_dict(cfg.to_dict()) == cfg
    get_adapter_model(tiny_mlp(0)[0], cfg).save_pretrained(tmp_path)
    assert AdapterConfig.load(tmp_path) == cfg
    assert "layout_pattern" not in HammingConfig(target_modules=["fc1"]).to_dict()


def test_formats_4_and_5_mean_the_paper_rule():
    """Format-4 and 5 files were saved when a config with neither blocks nor block_size meant
    max(3, d // 128) blocks (format 4 has no per-layer record): they load with
    default_layout='paper', that rule; a format-6 file says which rule it means."""
    from math import comb

    from qiadapters.adapters.formats import upgrade_config
    for d in range(16, 5000, 7):
        for orders in [(1,), (1, 2), (1, 2, 3)]:
            smallest = sum(comb(max(2, orders[-1]), k) for k in orders)
            assert hamming_layer.default_blocks(d, smallest, "paper") == \
                max(3, d // max(128, smallest))
    for fmt in (4, 5):
        old = {"adapter_type": "hamming", "blocks": None, "block_size": None}
        assert upgrade_config(fmt, old)["default_layout"] == "paper"
        mixture = {"adapter_type": "mixture", "experts": [{"adapter_type": "hamming",
                                                           "blocks": 4}]}
        assert upgrade_config(fmt, mixture)["experts"][0]["default_layout"] == "paper"
    new = {"adapter_type": "hamming", "blocks": None, "block_size": None,
           "default_layout": "compact"}
    assert upgrade_config(6, dict(new)) == new
    assert upgrade_config(6, {"adapter_type": "hamming"}) == {"adapter_type": "hamming"}
