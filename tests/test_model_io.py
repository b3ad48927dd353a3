"""The saved format: two files, adapter tensors only, format-version and shape checks that
fail before the model is modified, files of older versions that still load, and writes that
cannot leave a half-written adapter."""
import json
import os
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import qiadapters
from qiadapters import AdapterModel, HammingConfig
from qiadapters.adapters.config import FILE_KEYS, AdapterConfig
from qiadapters.model import VERSION_KEY, WEIGHTS_NAME
from qiadapters.model import io
from qiadapters.testing import TinyMLP, build, perturb, tiny_bert, tiny_mlp


CFG = HammingConfig(target_modules=["fc1", "fc2"], parametrization="circuit",
                    modules_to_save=["head"])


@pytest.fixture
def saved(tmp_path):
    am, inputs = build(tiny_mlp, CFG)
    perturb(am)
    am.save_pretrained(tmp_path)
    return tmp_path, am, inputs


def test_files_and_keys(saved):
    path, am, _ = saved
    assert sorted(os.listdir(path)) == ["adapter_config.json", WEIGHTS_NAME]
    data = json.loads((path / "adapter_config.json").read_text())
    assert data[VERSION_KEY] == qiadapters.__version__ and data["adapter_type"] == "hamming"
    assert data["format_version"] == io.FORMAT_VERSION
    tensors = load_file(path / WEIGHTS_NAME)
    assert sorted(tensors) == sorted(
        [f"{m}.hamming.{p}" for m in ("fc1", "fc2") for p in ("theta", "theta_mirror")]
        + ["head.modules_to_save.weight", "head.modules_to_save.bias"])
    rot = am.base_model.fc1.hamming["default"]
    assert torch.equal(tensors["fc1.hamming.theta"], rot.theta.detach())


def test_no_index_buffers_saved(tmp_path):
    am, _ = build(tiny_mlp, HammingConfig(target_modules=["fc1"]))
    am.save_pretrained(tmp_path)
    assert list(load_file(tmp_path / WEIGHTS_NAME)) == ["fc1.hamming.weight"]
    assert "triu" not in " ".join(am.state_dict())


def test_reload_and_train_further(saved):
    path, am, inputs = saved
    torch.manual_seed(99)
    fresh, _ = tiny_mlp()
    loaded = AdapterModel.from_pretrained(fresh, path, is_trainable=True)
    torch.testing.assert_close(loaded(**inputs), am(**inputs), atol=0, rtol=0)
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in am.named_parameters() if p.requires_grad}
    assert loaded.training


def test_second_adapter_goes_to_a_subdirectory(tmp_path):
    am, inputs = build(tiny_mlp, [HammingConfig(target_modules=["fc1"]),
                                  HammingConfig(target_modules=["fc2"], side="input")])
    perturb(am)
    am.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["adapter1", "adapter_config.json", WEIGHTS_NAME]
    fresh, _ = tiny_mlp()
    loaded = AdapterModel.from_pretrained(fresh, tmp_path)
    loaded.load_adapter(tmp_path / "adapter1", "adapter1")
    loaded.set_adapter(["default", "adapter1"])
    torch.testing.assert_close(loaded(**inputs), am(**inputs), atol=0, rtol=0)
    with pytest.raises(ValueError, match="'adapter1' already exists"):
        loaded.load_adapter(tmp_path / "adapter1", "adapter1")
    with pytest.raises(ValueError, match=r"selected_adapters=\['nope'\]"):
        am.save_pretrained(tmp_path, selected_adapters=["nope"])


def _untouched(model):
    return not any(isinstance(m, qiadapters.adapters.AdapterLayer) for m in model.modules())


def test_format_versions_decide_loading_not_library_versions(saved):
    path, am, inputs = saved
    cfg_file = path / "adapter_config.json"
    data = json.loads(cfg_file.read_text())
    expected = am(**inputs)
    data[VERSION_KEY] = "0.9.7"  # another library version writing the same format: loads
    cfg_file.write_text(json.dumps(data))
    fresh, _ = tiny_mlp()
    torch.testing.assert_close(AdapterModel.from_pretrained(fresh, path)(**inputs), expected,
                               rtol=0, atol=0)
    data["format_version"] = io.FORMAT_VERSION + 1
    cfg_file.write_text(json.dumps(data))
    fresh, _ = tiny_mlp()
    with pytest.raises(ValueError, match=rf"adapter format {io.FORMAT_VERSION + 1} \(written by "
                                         rf"qiadapters 0.9.7\), newer than this qiadapters "
                                         rf"{qiadapters.__version__} reads \(formats 1 to "
                                         rf"{io.FORMAT_VERSION}\)"):
        AdapterModel.from_pretrained(fresh, path)
    assert _untouched(fresh)
    data["format_version"] = "2"
    cfg_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"format_version='2'; valid: an integer from 1"):
        AdapterModel.from_pretrained(fresh, path)
    del data[VERSION_KEY], data["format_version"]
    cfg_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not saved by qiadapters"):
        AdapterModel.from_pretrained(fresh, path)
    assert _untouched(fresh)


LEGACY = os.path.join(os.path.dirname(__file__), "data", "saved_by_0.1.0")
# Saved by qiadapters 0.1.0 (format 1) from tiny_mlp(0) with perturbed adapters, with the
# logits 0.1.0 computed: see tests/data/saved_by_0.1.0/README.md.
LEGACY_NAMES = ["hamming", "mixture"]


@pytest.mark.parametrize("name", LEGACY_NAMES)
def test_files_written_by_0_1_0_load_with_the_outputs_0_1_0_computed(name):
    directory = os.path.join(LEGACY, name)
    config, state = io.read_adapter(directory)
    assert config.to_dict()["adapter_type"] == name
    model, inputs = tiny_mlp(0)
    am = AdapterModel.from_pretrained(model, directory)
    expected = load_file(os.path.join(directory, "expected_logits.safetensors"))["logits"]
    with torch.no_grad():
        torch.testing.assert_close(am(**inputs), expected, rtol=1e-6, atol=1e-6)


FORMAT_2 = os.path.join(os.path.dirname(__file__), "data", "saved_by_0.2.0")
# Saved by qiadapters 0.2.0 (format 2): single-prior physics adapters that still held a
# router; see tests/data/saved_by_0.2.0/README.md.


@pytest.mark.parametrize("name", ["physics-single", "mixture-single"])
def test_format_2_routers_of_single_prior_physics_adapters_are_dropped_on_load(name):
    pytest.importorskip("physics")
    directory = os.path.join(FORMAT_2, name)
    with safe_open(os.path.join(directory, WEIGHTS_NAME), "pt") as f:
        routers = [k for k in f.keys() if ".physics." in k and ".router." in k]
    assert routers  # the file holds them ...
    model, inputs = tiny_mlp(0)
    am = AdapterModel.from_pretrained(model, directory)
    live = io.adapter_state_dict(am.base_model, "default")
    single = [k for k in routers if ".experts.1." not in k]  # expert 1 routes three priors
    assert single and not set(single) & set(live)  # ... the model holds none of the single ones
    assert set(routers) - set(single) <= set(live)
    expected = load_file(os.path.join(directory, "expected_logits.safetensors"))["logits"]
    with torch.no_grad():
        torch.testing.assert_close(am(**inputs), expected, rtol=1e-6, atol=1e-6)


FORMAT_3 = os.path.join(os.path.dirname(__file__), "data", "saved_by_0.2.1")
# Saved by qiadapters 0.2.1 (format 3): Hamming configs with neither blocks nor block_size on
# 768-wide layers, which then meant 3 blocks; see tests/data/saved_by_0.2.1/README.md.


def wide_mlp(seed: int = 0):
    """The base of the format-3 fixtures: TinyMLP with 768 hidden features, tiny_mlp's batch."""
    torch.manual_seed(seed)
    return TinyMLP(hidden=768).eval(), tiny_mlp(seed)[1]


def _layouts(am) -> dict[str, tuple[int, int]]:
    """``{module path (+ expert): (blocks, n)}`` of every Hamming adapter in ``am``."""
    return {f"{path}.{name}": (m.block_layout.blocks, m.block_layout.n)
            for path, layer in am.adapter_layers()
            for name, m in layer.named_modules() if hasattr(m, "block_layout")}


# (blocks, n) each adapter was saved with: 3 blocks of 256 features (formats 1-3's default),
# where the current default on 768 features is 6 blocks of 128 (n = 15 for {1,2}, 8 for {1,2,3})
FORMAT_3_LAYOUTS = {
    "hamming-wide": {"fc1.hamming.default": (3, 22), "fc2.hamming.default": (3, 22)},
    "mixture-wide": {"fc2.experts.default.0.hamming.expert": (3, 11),
                     "fc2.experts.default.1.hamming.expert": (8, 13)},  # saved with blocks=8
}


@pytest.mark.parametrize("name", sorted(FORMAT_3_LAYOUTS))
def test_format_3_default_blocks_load_as_the_3_blocks_they_meant(name):
    directory = os.path.join(FORMAT_3, name)
    with open(os.path.join(directory, "adapter_config.json")) as f:
        raw = json.load(f)
    assert raw["format_version"] == 3
    config, _ = io.read_adapter(directory)
    hamming = config.experts if name.startswith("mixture") else [config]
    assert [c.blocks for c in hamming] == ([3, 8] if name.startswith("mixture") else [3])
    am = AdapterModel.from_pretrained(wide_mlp()[0], directory)
    assert _layouts(am) == FORMAT_3_LAYOUTS[name]
    # without the upgrade the same fields would build the current default's other layout
    fresh, _ = build(wide_mlp, AdapterConfig.from_dict({k: v for k, v in raw.items()
                                                        if k not in FILE_KEYS}))
    assert _layouts(fresh) != FORMAT_3_LAYOUTS[name]
    expected = load_file(os.path.join(directory, "expected_logits.safetensors"))["logits"]
    with torch.no_grad():
        torch.testing.assert_close(am(**wide_mlp()[1]), expected, rtol=1e-6, atol=1e-6)


def test_a_format_3_adapter_saved_again_keeps_its_layout(tmp_path):
    """Loading, training on and saving over a format-3 folder is an update (the fields read
    are the saved ones, blocks pinned); the new file says blocks=3 in the current format."""
    folder = tmp_path / "adapter"
    shutil.copytree(os.path.join(FORMAT_3, "hamming-wide"), folder)
    am = AdapterModel.from_pretrained(wide_mlp()[0], folder, is_trainable=True)
    perturb(am, seed=7)
    am.save_pretrained(folder)  # not refused as a different adapter
    data = json.loads((folder / "adapter_config.json").read_text())
    assert (data["format_version"], data["blocks"], data["block_size"]) == (io.FORMAT_VERSION, 3,
                                                                            None)
    again = AdapterModel.from_pretrained(wide_mlp()[0], folder)
    assert _layouts(again) == FORMAT_3_LAYOUTS["hamming-wide"]
    inputs = wide_mlp()[1]
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs), am.eval()(**inputs), rtol=0, atol=0)


def test_the_default_rule_is_saved_and_formats_4_5_mean_the_papers(tmp_path):
    """A config with neither blocks nor block_size saves its rule (default_layout); the same
    file as format 4 or 5 wrote it (no such key, no per-layer record) means the paper's rule,
    max(3, d // 128) blocks: 6 blocks of n = 15 on the 768-wide layer."""
    am, _ = build(wide_mlp, HammingConfig(target_modules=["fc2"]))
    am.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (data["blocks"], data["block_size"], data["default_layout"]) == (None, None,
                                                                            "compact")
    config, _ = io.read_adapter(tmp_path)
    assert (config.blocks, config.block_size, config.default_layout) == (None, None, "compact")
    assert _layouts(AdapterModel.from_pretrained(wide_mlp()[0], tmp_path)) == {
        "fc2.hamming.default": (24, 7)}
    paper, _ = build(wide_mlp, HammingConfig.paper(target_modules=["fc2"]))
    for fmt in (4, 5):
        folder = tmp_path / f"format{fmt}"
        paper.save_pretrained(folder)
        data = json.loads((folder / "adapter_config.json").read_text())
        del data["default_layout"], data["layers"]
        data["format_version"] = fmt
        (folder / "adapter_config.json").write_text(json.dumps(data))
        assert io.read_adapter(folder)[0].default_layout == "paper"
        assert _layouts(AdapterModel.from_pretrained(wide_mlp()[0], folder)) == {
            "fc2.hamming.default": (6, 15)}


def test_format_1_default_blocks_load_as_3_blocks():
    """Format 1 has no format_version key; its null blocks are pinned too (here a 48-wide
    layer, where 3 blocks are also today's default)."""
    config, _ = io.read_adapter(os.path.join(LEGACY, "mixture"))
    assert [(e.blocks, e.block_size) for e in config.experts] == [(4, None), (3, None)]


@pytest.mark.parametrize("content, match", [
    (b"", r"adapter_model.safetensors' \(0 bytes\) is not a readable safetensors file"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":", r"is not a readable safetensors file"),
    (b"not a safetensors file at all", r"truncated or corrupted"),
])
def test_broken_weights_files_name_the_file(saved, content, match):
    path, _, _ = saved
    (path / WEIGHTS_NAME).write_bytes(content)
    fresh, _ = tiny_mlp()
    with pytest.raises(ValueError, match=match):
        AdapterModel.from_pretrained(fresh, path)
    assert _untouched(fresh)


def test_truncated_weights_and_bad_json_name_the_file(saved):
    path, _, _ = saved
    weights = (path / WEIGHTS_NAME).read_bytes()
    (path / WEIGHTS_NAME).write_bytes(weights[: len(weights) // 2])
    fresh, _ = tiny_mlp()
    with pytest.raises(ValueError, match=rf"\({len(weights) // 2} bytes\) is not a readable"):
        AdapterModel.from_pretrained(fresh, path)
    (path / "adapter_config.json").write_text('{"adapter_type": "hamming", ')
    with pytest.raises(ValueError, match=r"adapter_config.json' is not valid JSON"):
        AdapterModel.from_pretrained(fresh, path)
    (path / "adapter_config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"holds a list, not a JSON object"):
        AdapterModel.from_pretrained(fresh, path)
    assert _untouched(fresh)


def test_a_save_that_fails_midway_leaves_the_previous_adapter(saved, monkeypatch):
    path, am, inputs = saved
    before = {f: (path / f).read_bytes() for f in os.listdir(path)}
    perturb(am, seed=5)

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        am.save_pretrained(path)
    assert {f: (path / f).read_bytes() for f in os.listdir(path)} == before  # no temp left
    monkeypatch.undo()
    fresh, _ = tiny_mlp()
    AdapterModel.from_pretrained(fresh, path)  # still loads


def test_other_shapes_are_refused_before_modifying(saved):
    path, _, _ = saved
    wider = TinyMLP(hidden=64)
    with pytest.raises(ValueError, match=r"does not fit module 'fc1': it was saved for a layer of "
                                         r"shape \(in=16, out=48\), this model's is "
                                         r"\(in=16, out=64\)"):
        AdapterModel.from_pretrained(wider, path)
    assert _untouched(wider)
    data = json.loads((path / "adapter_config.json").read_text())
    del data["layers"]  # a file without the record (format 4): the tensor shapes tell
    data["format_version"] = 4
    (path / "adapter_config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"does not fit module 'fc1': tensor 'fc1.hamming.theta' "
                                         r"has shape \(1, 36\) in the file but \(2, 21\)"):
        AdapterModel.from_pretrained(wider, path)
    assert _untouched(wider)
    bert, _ = tiny_bert()
    with pytest.raises(ValueError, match=r"target_modules=\['fc1', 'fc2'\] matches no module"):
        AdapterModel.from_pretrained(bert, path)
    assert _untouched(bert)


def test_tampered_tensors_are_refused(saved):
    path, _, _ = saved
    tensors = load_file(path / WEIGHTS_NAME)
    del tensors["head.modules_to_save.bias"]
    tensors["fc9.hamming.theta"] = torch.zeros(1)
    from safetensors.torch import save_file

    save_file(tensors, path / WEIGHTS_NAME)
    fresh, _ = tiny_mlp()
    with pytest.raises(ValueError, match=r"missing tensors \['head.modules_to_save.bias'\], "
                                         r"unexpected tensors \['fc9.hamming.theta'\]"):
        AdapterModel.from_pretrained(fresh, path)
    assert _untouched(fresh)


def test_missing_files(tmp_path):
    fresh, _ = tiny_mlp()
    with pytest.raises(FileNotFoundError, match="adapter_config.json' does not exist"):
        AdapterModel.from_pretrained(fresh, tmp_path)


def test_saving_a_merged_model_is_refused(tmp_path):
    am, _ = build(tiny_mlp, CFG)
    am.merge_adapter()
    with pytest.raises(RuntimeError, match="unmerge_adapter"):
        am.save_pretrained(tmp_path)
    am.unmerge_adapter()
    am.save_pretrained(tmp_path)


def test_qiadapters_never_imports_physics_but_loads_its_configs_on_demand():
    import subprocess
    import sys

    code = ("import sys, qiadapters\n"
            "assert 'physics' not in sys.modules, 'qiadapters imported physics'\n"
            "from qiadapters.adapters import AdapterConfig\n"
            "c = AdapterConfig.from_dict({'adapter_type': 'physics', 'target_modules': ['q']})\n"
            "assert type(c).__name__ == 'PhysicsConfig'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_save_in_progress_of_the_same_adapter_is_not_refused(tmp_path):
    """With DDP every rank may save the same adapter at once: a rank that checks the folder
    between another's tensors file and its config sees the tensors alone.  The same tensor
    names and shapes are allowed; other ones (another adapter's, interrupted) are refused."""
    cfg = HammingConfig(target_modules=["fc1", "fc2"], blocks=2)
    am = perturb(build(tiny_mlp, cfg)[0])
    am.save_pretrained(tmp_path / "a")
    os.remove(tmp_path / "a" / "adapter_config.json")  # the config has not landed yet
    am.save_pretrained(tmp_path / "a")  # the same adapter: allowed, and completes the save
    assert AdapterModel.from_pretrained(tiny_mlp(0)[0], tmp_path / "a") is not None
    other = build(tiny_mlp, HammingConfig(target_modules=["fc1"], blocks=1))[0]
    other.save_pretrained(tmp_path / "b")
    os.remove(tmp_path / "b" / "adapter_config.json")
    with pytest.raises(FileExistsError, match="different adapter"):
        am.save_pretrained(tmp_path / "b")
    assert sorted(os.listdir(tmp_path / "b")) == [WEIGHTS_NAME]  # nothing was written
