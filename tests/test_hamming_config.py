"""HammingConfig: defaults, documentation, JSON round trip, validation."""
import json
from dataclasses import fields

import pytest

from qiadapters import HammingConfig
from qiadapters.adapters import CONFIGS, AdapterConfig


def test_defaults_and_registry():
    cfg = HammingConfig(target_modules=["query", "value"])
    assert (cfg.orders, cfg.blocks, cfg.block_size, cfg.n_qubits) == ((1, 2), None, None, None)
    assert (cfg.layout, cfg.gate, cfg.side, cfg.parametrization) == (
        "pyramid", "rbs", "output", "cayley")
    assert cfg.adapter_type == "hamming" and CONFIGS["hamming"] is HammingConfig


def test_every_field_is_documented():
    for f in fields(HammingConfig):
        assert len(f.metadata.get("help", "")) > 20, f.name


def test_json_round_trip(tmp_path):
    cfg = HammingConfig(target_modules=r".*\.(query|value)", orders=[1, 2, 3], block_size=40,
                        parametrization="circuit", layout="butterfly", gate="fbs",
                        side="input", share_blocks=True, modules_to_save=["classifier"])
    assert cfg.orders == (1, 2, 3)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["adapter_type"] == "hamming" and data["orders"] == [1, 2, 3]
    assert HammingConfig.from_dict(data) == cfg
    assert AdapterConfig.from_dict(data) == cfg  # dispatch on adapter_type
    cfg.save(tmp_path)
    assert AdapterConfig.load(tmp_path) == cfg


@pytest.mark.parametrize("kwargs, match", [
    ({"target_modules": "query"}, None),  # a regex string is fine
    ({"target_modules": "("}, "not a valid regex"),
    ({"target_modules": []}, "non-empty list"),
    ({"target_modules": ["q", 3]}, "non-empty strings"),
    ({"target_modules": ["q"], "modules_to_save": "classifier"}, "list of module-name strings"),
    ({"target_modules": ["q"], "orders": (2, 2)}, "duplicates"),
    ({"target_modules": ["q"], "orders": (0,)}, "contains 0"),
    ({"target_modules": ["q"], "blocks": 2, "block_size": 8}, "not both"),
    ({"target_modules": ["q"], "blocks": 0}, "out of range"),
    ({"target_modules": ["q"], "n_qubits": 1}, "out of range"),
    ({"target_modules": ["q"], "layout": "ring"}, r"layout='ring' is not valid; choose one of"),
    ({"target_modules": ["q"], "gate": "cz"}, r"'rbs', 'fbs'"),
    ({"target_modules": ["q"], "side": "left"}, r"'output', 'input'"),
    ({"target_modules": ["q"], "parametrization": "qr"}, r"'cayley', 'expm', 'circuit'"),
    ({"target_modules": ["q"], "share_blocks": 1}, "share_blocks"),
])
def test_validation(kwargs, match):
    if match is None:
        HammingConfig(**kwargs)
        return
    with pytest.raises(ValueError, match=match):
        HammingConfig(**kwargs)


def test_from_dict_errors():
    with pytest.raises(ValueError, match=r"unknown HammingConfig fields \['rank'\]"):
        HammingConfig.from_dict({"adapter_type": "hamming", "target_modules": ["q"], "rank": 8})
    with pytest.raises(ValueError, match=r"adapter_type='lora' is not valid; choose one of"):
        AdapterConfig.from_dict({"adapter_type": "lora", "target_modules": ["q"]})


def test_config_files_keep_the_meaning_they_were_saved_with(tmp_path):
    """``AdapterConfig.load`` reads the format version: configs saved by 0.2.1 (format 3)
    with the default layout mean 3 blocks, a mixture's Hamming experts too; ``save`` writes
    the version; a config file without one (written by hand) is read as the current format."""
    from pathlib import Path

    from qiadapters.adapters.formats import FORMAT_VERSION

    data = Path(__file__).parent / "data" / "saved_by_0.2.1"
    old = AdapterConfig.load(data / "hamming-wide")
    assert (old.blocks, old.block_size) == (3, None)
    mixture = AdapterConfig.load(data / "mixture-wide")
    assert [(e.blocks, e.block_size) for e in mixture.experts
            if e.adapter_type == "hamming"][0] == (3, None)
    cfg = HammingConfig(target_modules=["query"])
    cfg.save(tmp_path / "new")
    written = json.loads((tmp_path / "new" / "adapter_config.json").read_text())
    assert written["format_version"] == FORMAT_VERSION and "qiadapters_version" in written
    assert AdapterConfig.load(tmp_path / "new") == cfg and cfg.blocks is None
    (tmp_path / "hand").mkdir()
    (tmp_path / "hand" / "adapter_config.json").write_text(json.dumps(cfg.to_dict()))
    assert AdapterConfig.load(tmp_path / "hand").blocks is None


def test_all_linear_in_any_case_selects_what_peft_selects():
    """``target_modules="ALL-LINEAR"`` is ``"all-linear"``, as peft reads it (it compares
    ``target_modules.lower()``): the modules peft's LoRA adapts with that spelling, but the
    head."""
    peft = pytest.importorskip("peft")
    from qiadapters import get_adapter_model
    from qiadapters.testing import tiny_bert

    cfg = HammingConfig(target_modules="ALL-LINEAR", blocks=2)
    assert cfg.target_modules == "all-linear"
    ours = {n for n, _ in get_adapter_model(tiny_bert()[0], cfg).adapter_layers()}
    lora = peft.get_peft_model(tiny_bert()[0], peft.LoraConfig(target_modules="ALL-LINEAR", r=2))
    theirs = {n.removeprefix("base_model.model.") for n, m in lora.named_modules()
              if hasattr(m, "lora_A")}
    # peft keeps the classifier (it excludes only get_output_embeddings()); ours leaves heads
    assert ours == theirs - {"classifier"} and len(ours) > 4
