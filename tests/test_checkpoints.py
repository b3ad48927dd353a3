"""Checkpoints: the overwrite rule, string/list ``selected_adapters``, ``load_adapter`` names,
and a save killed mid-write (SIGKILL) never leaving a broken or mixed checkpoint."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors import safe_open
from torch import nn

from qiadapters import AdapterModel, HammingConfig, get_adapter_model
from qiadapters.model.io import CONFIG_NAME, WEIGHTS_NAME
from qiadapters.testing import TinyMLP, perturb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _am(seed=0, targets=("fc1", "fc2"), **options):
    torch.manual_seed(seed)
    return get_adapter_model(TinyMLP(), HammingConfig(target_modules=list(targets), **options))


def _bytes(folder):
    with open(os.path.join(folder, WEIGHTS_NAME), "rb") as f, \
            open(os.path.join(folder, CONFIG_NAME), "rb") as g:
        return f.read(), g.read()


def test_saving_the_same_adapter_again_updates_it(tmp_path):
    am = _am()
    am.save_pretrained(tmp_path)
    before = _bytes(tmp_path)
    perturb(am)  # "more training": same config, same tensor names and shapes
    am.save_pretrained(tmp_path)
    after = _bytes(tmp_path)
    assert after[0] != before[0] and after[1] == before[1]
    x = torch.randn(2, 16)
    loaded = AdapterModel.from_pretrained(_am().base_model.__class__(), tmp_path)
    torch.manual_seed(0)
    fresh = AdapterModel.from_pretrained(TinyMLP(), tmp_path)
    assert torch.allclose(fresh(x), am(x), atol=1e-6)
    assert loaded.active_adapter == "default"


@pytest.mark.parametrize("other", [dict(targets=("fc1",)), dict(blocks=2),
                                   dict(parametrization="expm")])
def test_saving_a_different_adapter_is_refused_unless_overwrite(tmp_path, other):
    _am().save_pretrained(tmp_path)
    before = _bytes(tmp_path)
    am = _am(**other)
    with pytest.raises(FileExistsError, match="already holds a different adapter"):
        am.save_pretrained(tmp_path)
    assert _bytes(tmp_path) == before
    am.save_pretrained(tmp_path, overwrite=True)
    assert _bytes(tmp_path) != before
    am.save_pretrained(tmp_path)  # now it is the same adapter: an update


def test_other_tensor_shapes_are_a_different_adapter(tmp_path):
    _am().save_pretrained(tmp_path)
    torch.manual_seed(0)
    wide = get_adapter_model(TinyMLP(hidden=64), HammingConfig(target_modules=["fc1", "fc2"]))
    with pytest.raises(FileExistsError, match=r"tensors differ, first 'fc1.hamming.weight'"):
        wide.save_pretrained(tmp_path)


def test_unreadable_files_count_as_different(tmp_path):
    _am().save_pretrained(tmp_path)
    with open(tmp_path / WEIGHTS_NAME, "wb") as f:
        f.write(b"junk")
    with pytest.raises(FileExistsError, match="unreadable"):
        _am().save_pretrained(tmp_path)
    _am().save_pretrained(tmp_path, overwrite=True)
    AdapterModel.from_pretrained(TinyMLP(), tmp_path)


def test_a_multi_adapter_save_checks_every_folder_before_writing(tmp_path):
    am = _am()
    am.add_adapter("b", HammingConfig(target_modules=["fc2"]))
    other = _am(targets=("fc2",), blocks=2)
    other.save_pretrained(tmp_path / "b")
    blocked = _bytes(tmp_path / "b")
    with pytest.raises(FileExistsError):
        am.save_pretrained(tmp_path)
    assert not (tmp_path / WEIGHTS_NAME).exists()  # "default" was not written either
    assert _bytes(tmp_path / "b") == blocked


def test_selected_adapters_takes_a_string_or_a_list(tmp_path):
    am = _am()
    am.add_adapter("second", HammingConfig(target_modules=["fc2"]))
    am.save_pretrained(tmp_path / "s", selected_adapters="second")
    assert sorted(os.listdir(tmp_path / "s")) == ["second"]
    am.save_pretrained(tmp_path / "l", selected_adapters=["default", "second"])
    assert sorted(os.listdir(tmp_path / "l")) == sorted([CONFIG_NAME, WEIGHTS_NAME, "second"])
    with pytest.raises(ValueError, match="existing adapters"):
        am.save_pretrained(tmp_path / "e", selected_adapters=[])


def test_load_adapter_needs_a_fresh_name(tmp_path):
    _am().save_pretrained(tmp_path)
    am = AdapterModel(TinyMLP())
    am.load_adapter(tmp_path)  # no adapter yet: "default"
    with pytest.raises(ValueError, match=r"'default' is taken .* adapter_name="):
        am.load_adapter(tmp_path)
    am.load_adapter(tmp_path, adapter_name="again")
    assert list(am.peft_config) == ["default", "again"]
    with pytest.raises(ValueError, match="already exists"):
        am.load_adapter(tmp_path, adapter_name="again")


def test_a_failed_from_pretrained_leaves_no_hooks(tmp_path):
    model = TinyMLP()
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        AdapterModel.from_pretrained(model, tmp_path / "empty")
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


# ------------------------------------------------------------------ killed mid-write
CHILD = textwrap.dedent("""
    import sys, torch
    from torch import nn
    from qiadapters import HammingConfig, get_adapter_model
    folder = sys.argv[1]
    def build(seed):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 64), nn.Linear(1024, 1024), nn.Linear(1024, 1024))
        cfg = HammingConfig(target_modules=["0"], modules_to_save=["1", "2"])
        return get_adapter_model(model, cfg)
    seed = int(sys.argv[2])
    am = build(seed)
    am.save_pretrained(folder)
    if len(sys.argv) > 3:  # writer: alternate the two checkpoints for ever, on a slow disk
        import time
        from safetensors.torch import save
        from qiadapters.model import io

        def slow_save_file(tensors, path, metadata=None):  # 1 MiB chunks, 2 ms apart
            data = save(tensors, metadata)
            with open(path, "wb") as f:
                for i in range(0, len(data), 1 << 20):
                    f.write(data[i:i + (1 << 20)])
                    f.flush()
                    time.sleep(0.002)

        io.save_file = slow_save_file
        print("ready", flush=True)
        other = build(1 - seed)
        while True:
            other.save_pretrained(folder)
            am.save_pretrained(folder)
""")


def _child(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, text=True, **kwargs)


def _content(folder):
    """The weights file's tensors (as raw bytes) and metadata, and the config file's bytes.
    (safetensors writes its metadata map in a per-process order, so whole files differ.)"""
    with safe_open(os.path.join(folder, WEIGHTS_NAME), "pt") as f:
        tensors = {k: f.get_tensor(k).view(torch.uint8).numpy().tobytes() for k in f.keys()}
        meta = f.metadata()
    return tensors, meta, _bytes(folder)[1]


def test_a_save_killed_mid_write_leaves_a_loadable_checkpoint(tmp_path):
    refs = {}
    for seed in (0, 1):
        assert _child(tmp_path / f"ref{seed}", seed).wait(timeout=120) == 0
        refs[seed] = _content(tmp_path / f"ref{seed}")
    assert refs[0][1:] == refs[1][1:] and refs[0][0] != refs[1][0]  # same config, new values
    folder = tmp_path / "live"
    rng = random.Random(0)
    for attempt in range(3):
        proc = _child(folder, 0, "loop")
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        now = _content(folder)  # a cut file would not even open
        assert now in (refs[0], refs[1]), f"attempt {attempt}: a mixed checkpoint"
        model = nn.Sequential(nn.Linear(64, 64), nn.Linear(1024, 1024), nn.Linear(1024, 1024))
        AdapterModel.from_pretrained(model, folder)  # loads


def test_a_float64_adapter_loads_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    am = get_adapter_model(TinyMLP().double(), HammingConfig(target_modules=["fc1", "fc2"]))
    perturb(am)
    am.save_pretrained(tmp_path)
    torch.manual_seed(0)
    loaded = AdapterModel.from_pretrained(TinyMLP().double(), tmp_path)
    ours, theirs = am.state_dict(), loaded.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # was rounded via float32
