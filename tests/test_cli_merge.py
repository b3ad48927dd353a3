"""``qiadapters merge`` never writes over its inputs, writes the merged model through a
temporary folder (an existing ``--out`` is replaced only once the new model is complete),
refuses an ``--out`` that is a file, and merges a tied output head correctly."""
import os

import pytest
import torch

from qiadapters import HammingConfig
from qiadapters.cli import main
from qiadapters.testing import build, logits, perturb
from qiadapters.tiny_models import tiny_gpt2

torch.set_num_threads(1)


def _files(folder) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny GPT-2 model folder, an adapter on its tied ``lm_head`` and ``c_attn``, and
    the adapted model's logits."""
    tmp = tmp_path_factory.mktemp("merge")
    model, inputs = tiny_gpt2(0)
    model.save_pretrained(tmp / "base")
    (tmp / "base" / "vocab.json").write_text("{}\n")
    am, _ = build(tiny_gpt2, HammingConfig(target_modules=["lm_head", "c_attn"], blocks=2))
    perturb(am)
    am.save_pretrained(tmp / "adapter")
    with torch.no_grad():
        expected = logits(am(**inputs))
    return tmp, inputs, expected


def _merge(tmp, out, *extra):
    return main(["merge", "--model", str(tmp / "base"), "--adapter", str(tmp / "adapter"),
                 "--out", str(out), *extra])


@torch.no_grad()
def test_the_merged_folder_computes_what_the_adapted_model_did(folders, tmp_path):
    from transformers import GPT2LMHeadModel

    tmp, inputs, expected = folders
    assert _merge(tmp, tmp_path / "merged") == 0
    merged = GPT2LMHeadModel.from_pretrained(tmp_path / "merged").eval()
    assert merged.config.tie_word_embeddings is False
    torch.testing.assert_close(logits(merged(**inputs)), expected, atol=1e-5, rtol=1e-5)
    assert (tmp_path / "merged" / "vocab.json").read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == ["merged"]  # no temporary folder left behind


def _over_inputs(tmp):
    """``--out`` values that are, or are inside or above, the model or adapter folder."""
    link = tmp / "link-to-base"
    if not link.exists():
        link.symlink_to(tmp / "base")
    return {
        "model": tmp / "base",
        "model-slash": f"{tmp / 'base'}{os.sep}",
        "model-dotdot": tmp / "adapter" / ".." / "base",
        "model-symlink": link,
        "inside-model": tmp / "base" / "merged",
        "adapter": tmp / "adapter",
        "above-both": tmp,
    }


@pytest.mark.parametrize("which", ["model", "model-slash", "model-dotdot", "model-symlink",
                                   "inside-model", "adapter", "above-both"])
def test_out_over_an_input_is_refused_before_anything_is_written(folders, which, capsys):
    tmp, _, _ = folders
    before = {name: _files(tmp / name) for name in ("base", "adapter")}
    out = _over_inputs(tmp)[which]
    status = _merge(tmp, out, "--overwrite")
    err = capsys.readouterr().err
    assert status != 0
    assert f"--out {str(out)!r}" in err and "would write over" in err
    named = "--adapter" if which == "adapter" else "--model"
    assert named in err and (str(tmp / "adapter") if which == "adapter" else
                             str(tmp / "base")) in err
    assert {name: _files(tmp / name) for name in ("base", "adapter")} == before
    assert not (tmp / "base" / "merged").exists()


def test_out_an_existing_file_is_refused(folders, tmp_path, capsys):
    tmp, _, _ = folders
    target = tmp_path / "merged.bin"
    target.write_bytes(b"keep me")
    for extra in ((), ("--overwrite",)):
        assert _merge(tmp, target, *extra) != 0
        err = capsys.readouterr().err
        assert f"--out {str(target)!r} is a file" in err and "Traceback" not in err
    assert target.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == ["merged.bin"]


@torch.no_grad()
def test_overwrite_replaces_the_old_folder_whole(folders, tmp_path):
    from transformers import GPT2LMHeadModel

    tmp, inputs, expected = folders
    out = tmp_path / "merged"
    out.mkdir()
    (out / "pytorch_model.bin").write_bytes(b"stale weights of another model")
    assert _merge(tmp, out, "--overwrite") == 0
    assert "pytorch_model.bin" not in os.listdir(out)
    merged = GPT2LMHeadModel.from_pretrained(out).eval()
    torch.testing.assert_close(logits(merged(**inputs)), expected, atol=1e-5, rtol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["merged"]


def test_a_failure_half_way_leaves_the_old_folder_as_it_was(folders, tmp_path, monkeypatch):
    from transformers import GPT2LMHeadModel

    tmp, _, _ = folders
    out = tmp_path / "merged"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"the previous merge")
    real = GPT2LMHeadModel.save_pretrained

    def save_then_fail(self, directory, *args, **kwargs):
        real(self, directory, *args, **kwargs)
        raise RuntimeError("interrupted")

    monkeypatch.setattr(GPT2LMHeadModel, "save_pretrained", save_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        _merge(tmp, out, "--overwrite")
    assert _files(out) == {"model.safetensors": b"the previous merge"}
    assert sorted(os.listdir(tmp_path)) == ["merged"]


def test_a_failure_removes_the_parent_folders_it_made(folders, tmp_path, monkeypatch):
    from transformers import GPT2LMHeadModel

    tmp, _, _ = folders
    (tmp_path / "kept").mkdir()

    def fail(self, directory, *args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(GPT2LMHeadModel, "save_pretrained", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        _merge(tmp, tmp_path / "kept" / "a" / "b" / "merged")
    assert sorted(os.listdir(tmp_path)) == ["kept"] and not os.listdir(tmp_path / "kept")
