"""An adapter folder from the internet is untrusted input (docs/security.md): bounded cost
before any check, patterns that cannot hang, names that cannot leave the save folder.

Every load that could run long or take much memory on a weaker library runs in a child
process (``tests/hostile.py``) with its address space capped and a timeout."""
import json
import os
import random
import re
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from qiadapters import AdapterModel, HammingAdapter, HammingConfig, bounds
from qiadapters.adapters.patterns import ModulePattern, fullmatch
from qiadapters.testing import tiny_bert, tiny_gpt2

HERE = os.path.dirname(os.path.abspath(__file__))


def test_hostile_configs_are_refused_within_a_second_and_leave_memory_as_it_was(tmp_path):
    """Each 30-byte edit of a real adapter's config (a high Hamming order, a circuit of
    order 21, a physics rank of 900,000, 5000 mixture experts, a backtracking pattern)
    is refused naming the file and the field, within a second, and the refused load leaves
    resident memory where it was (nothing built, nothing cached); so is a save into a folder
    whose config links to /dev/zero (it was read until MemoryError)."""
    run = subprocess.run([sys.executable, os.path.join(HERE, "hostile.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {r["case"]: r for r in map(json.loads, run.stdout.splitlines())}
    fields = {"orders_10_one_block": "orders=(10,)", "orders_9": "orders=(9,)",
              "circuit_order_21": "orders=(21,)", "pattern": "target_modules='(.|.)*!'",
              "physics_rank": "rank=900000", "mixture_5000_experts": "len(experts)=5000",
              "save_over_dev_zero": "is a character device, not a regular file"}
    assert set(rows) == set(fields)
    for case, field in fields.items():
        row = rows[case]
        assert row["error"] and row["error"].startswith("ValueError"), row
        assert str(tmp_path / case / "adapter_config.json") in row["error"], row
        assert field in row["error"], row
        assert row["seconds"] < 1.0, row
        assert row["rss_added_mb"] < 32, row


@pytest.mark.parametrize("width, orders, blocks", [(64, (1, 2), 2), (128, (1, 2, 3), 1),
                                                   (96, (1, 2, 3, 4), 1), (256, (1, 3), None)])
def test_table_entries_bound_the_tables_a_block_holds(width, orders, blocks):
    """hamming_table_entries is an upper bound of the index-table entries a built Hamming
    layer holds (counted from its buffers), and within 3x of them: the bound measures what
    is built."""
    layer = HammingAdapter(nn.Linear(width, width), orders=orders, blocks=blocks)
    module = layer.hamming["default"]
    held = sum(b.numel() for b in module.compound_tables.buffers())
    planned = bounds.hamming_table_entries(module.block_layout.n, orders)
    assert held <= planned <= 3 * max(held, 1)


def test_the_bound_applies_to_python_configs_and_unbounded_lifts_it(monkeypatch):
    model, batch = tiny_bert()
    monkeypatch.setattr(bounds, "MAX_TABLE_ENTRIES", 10)
    cfg = HammingConfig(target_modules=["query"], orders=(1, 2, 3))
    with pytest.raises(ValueError, match=r"orders=\(1, 2, 3\).*above the bound 10 "):
        AdapterModel(model, cfg)
    assert not any(isinstance(m, HammingAdapter) for m in model.modules())
    with bounds.unbounded():
        am = AdapterModel(model, cfg)
    assert not bounds.is_unbounded()
    assert sum(isinstance(m, HammingAdapter) for m in am.modules()) == 2


def test_physics_rank_is_bounded_by_the_width():
    from physics import PhysicsAdapter
    assert PhysicsAdapter(16, rank=4 * 16).rank == 64
    with pytest.raises(ValueError, match=r"rank=65: on dim=16.*above the bound 64"):
        PhysicsAdapter(16, rank=65)
    with pytest.raises(ValueError, match=r"dim=100000.*above the bound 65,536"):
        PhysicsAdapter(100_000, rank=1)


# ----------------------------------------------------------------------------- patterns
PATTERNS = [r".*\.(query|value)", r"bert\.encoder\.layer\.[0-9]+\.attention\.self\.(query|key)",
            r".*layer\.\d+\..*", r"^a.*b$", r"a{2,3}b*", r"[^.]+\.[^.]+", r"\w+(\.\w+)*",
            r"(a|ab)*c?", r"(?m)^x$", r"x\b.*", r"\Bb.*", r".*\Z", r"(ab|a)(bc|c)?",
            r"[\d\s]*q?", r"(?x) a  b # c", r"a??b+?c*?", r"(a*)*", r"(|a)+b", r"[a-c-]+\.?",
            r"\W*", r"\D\S", r"(?:l|la)+yer.*", r"(?s).*", r"transformer\.h\.\d\.(attn|mlp)\.c_.*"]


def _names():
    rng = random.Random(0)
    names = [n for m in (tiny_bert()[0], tiny_gpt2()[0]) for n, _ in m.named_modules()]
    names += ["", "a", "ab", "aab", "x\n", "a\nb", "x.y"]
    return names + ["".join(rng.choice("ab.c0lxqy_ -\n") for _ in range(rng.randint(0, 8)))
                    for _ in range(1500)]


def test_patterns_match_what_re_fullmatch_matches():
    names = _names()
    for pattern in PATTERNS:
        compiled, reference = ModulePattern(pattern), re.compile(pattern)
        wrong = [n for n in names if compiled.fullmatch(n) != bool(reference.fullmatch(n))]
        assert not wrong, (pattern, wrong[:3])


def test_random_patterns_match_what_re_fullmatch_matches():
    rng, names = random.Random(1), _names()[:300]
    atoms = ["a", "b", ".", "[ab]", r"\.", "(a|b)", "(ab|a)", "x", r"\d", r"\w", "[^a]", "$", "^",
             r"\b"]
    quantifiers = ["", "*", "+", "?", "{1,2}", "*?", "{2}"]
    for _ in range(400):
        pattern = "".join(rng.choice(atoms) + rng.choice(quantifiers)
                          for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.3:
            pattern = f"({pattern}){rng.choice(quantifiers)}"
        try:
            reference = re.compile(pattern)
        except re.error:
            continue
        compiled = ModulePattern(pattern)
        for n in names:
            assert compiled.fullmatch(n) == bool(reference.fullmatch(n)), (pattern, n)


@pytest.mark.parametrize("pattern", [r"(.|.)*!", r"(a|aa)*b", r"(.*a){12}x", r"(\w+\.?)*!"])
def test_backtracking_patterns_finish_within_a_second_on_real_module_names(pattern):
    names = [n for n, _ in tiny_bert(layers=6)[0].named_modules()] * 20
    start = time.perf_counter()
    ModulePattern(pattern)
    assert not any(fullmatch(pattern, n) for n in names)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("pattern, what", [(r"(a)\1", "a backreference"),
                                           (r"(?=q).*", "a lookaround"),
                                           (r"(?i)query", "case-insensitive"),
                                           (r"a{5000}", "automaton states")])
def test_patterns_without_a_linear_match_are_refused_by_name(pattern, what):
    with pytest.raises(ValueError, match=re.escape(f"target_modules={pattern!r} uses") +
                       f".*{what}"):
        HammingConfig(target_modules=pattern)


def test_a_pattern_selects_the_modules_re_selects():
    model, _ = tiny_bert()
    am = AdapterModel(model, HammingConfig(target_modules=r".*(query|val.e)"))
    wrapped = sorted(n for n, m in am.base_model.named_modules() if isinstance(m, HammingAdapter))
    assert wrapped == sorted(n for n, _ in tiny_bert()[0].named_modules()
                             if re.fullmatch(r".*(query|val.e)", n))


# ----------------------------------------------------------------------------- names
BAD_NAMES = ["/some/abs/dir", "a/b", "..\\x", "a\x00b", "bell\x07", "x" * 256, "é" * 128]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_adapter_names_are_refused_before_any_change(tmp_path, name):
    model, _ = tiny_bert()
    am = AdapterModel(model, HammingConfig(target_modules=["query"]))
    am.save_pretrained(tmp_path / "saved")
    before = {k: v.clone() for k, v in am.state_dict().items()}
    with pytest.raises(ValueError, match="adapter_name=.* path separators"):
        am.add_adapter(name, HammingConfig(target_modules=["value"]))
    with pytest.raises(ValueError, match="adapter_name=.* path separators"):
        am.load_adapter(tmp_path / "saved", adapter_name=name)
    fresh, _ = tiny_bert()
    with pytest.raises(ValueError, match="adapter_name=.* path separators"):
        AdapterModel.from_pretrained(fresh, tmp_path / "saved", adapter_name=name)
    assert not any(isinstance(m, HammingAdapter) for m in fresh.modules())
    assert list(am.peft_config) == ["default"]
    assert before.keys() == am.state_dict().keys()


def test_save_pretrained_checks_every_name_before_writing(tmp_path):
    model, _ = tiny_bert()
    am = AdapterModel(model, HammingConfig(target_modules=["query"]))
    am.peft_config[str(tmp_path / "outside")] = am.peft_config["default"]  # set by hand
    with pytest.raises(ValueError, match="path separators"):
        am.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "outside").exists()


def test_a_name_of_255_bytes_saves_and_loads(tmp_path):
    name = "é" * 127  # 254 bytes of UTF-8
    model, batch = tiny_bert()
    am = AdapterModel(model, HammingConfig(target_modules=["query"]))
    am.add_adapter(name, HammingConfig(target_modules=["value"]))
    am.save_pretrained(tmp_path)
    assert (tmp_path / name / "adapter_config.json").is_file()


# ----------------------------------------------------------------------------- files
@pytest.fixture
def saved(tmp_path):
    model, batch = tiny_bert()
    am = AdapterModel(model, HammingConfig(target_modules=["query"]))
    am.save_pretrained(tmp_path / "saved")
    return tmp_path / "saved", am


def test_loading_a_config_that_is_a_pipe_or_folder_is_refused_by_name(saved):
    path, _ = saved
    os.remove(path / "adapter_config.json")
    os.mkfifo(path / "adapter_config.json")  # opening it to read would block forever
    with pytest.raises(ValueError, match="adapter_config.json' is a named pipe, not a regular"):
        AdapterModel.from_pretrained(tiny_bert()[0], path)
    with pytest.raises(ValueError, match="is a named pipe"):
        HammingConfig.load(path)


@pytest.mark.parametrize("overwrite", [False, True])
def test_saving_over_a_config_that_is_a_folder_is_refused_before_writing(tmp_path, overwrite):
    model, _ = tiny_bert()
    am = AdapterModel(model, HammingConfig(target_modules=["query"]))
    (tmp_path / "adapter_config.json").mkdir()
    with pytest.raises(ValueError, match=r"adapter_config.json' is a folder, not a regular"):
        am.save_pretrained(tmp_path, overwrite=overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json"]


def test_a_config_linked_to_a_regular_file_loads(saved, tmp_path):
    path, am = saved
    os.rename(path / "adapter_config.json", tmp_path / "blob")  # the Hugging Face cache layout
    os.symlink(tmp_path / "blob", path / "adapter_config.json")
    loaded = AdapterModel.from_pretrained(tiny_bert()[0], path)
    assert loaded.peft_config["default"] == am.peft_config["default"]


def test_deeply_nested_json_is_refused_by_name(saved):
    path, _ = saved
    (path / "adapter_config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nests JSON arrays or objects too deeply"):
        AdapterModel.from_pretrained(tiny_bert()[0], path)


def test_a_non_string_adapter_type_is_named(saved):
    path, _ = saved
    data = json.loads((path / "adapter_config.json").read_text())
    data["adapter_type"] = ["hamming"]
    (path / "adapter_config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"adapter_config.json': adapter_type=\['hamming'\] is "
                                         r"not valid; choose one of \[.*'hamming'"):
        AdapterModel.from_pretrained(tiny_bert()[0], path)


# ----------------------------------------------------------------------------- tensors
def _rewrite(path, change):
    from safetensors.torch import load_file, save_file
    file = str(path / "adapter_model.safetensors")
    state = load_file(file)
    key = sorted(state)[0]
    state[key] = change(state[key])
    save_file(state, file, metadata={"format": "pt"})
    return key


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
def test_tensors_that_are_not_floating_point_are_refused_by_name(saved, dtype):
    path, _ = saved
    key = _rewrite(path, lambda t: t.to(dtype))
    fresh = tiny_bert()[0]
    with pytest.raises(ValueError, match=re.escape(f"tensor {key!r} has dtype {dtype}")):
        AdapterModel.from_pretrained(fresh, path)
    assert not any(isinstance(m, HammingAdapter) for m in fresh.modules())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_tensors_are_refused_unless_allowed(saved, value):
    path, _ = saved

    def poison(t):
        t = t.clone()
        t.view(-1)[0] = value
        return t
    key = _rewrite(path, poison)
    with pytest.raises(ValueError, match=re.escape(f"tensor {key!r} holds 1 NaN or infinite")):
        AdapterModel.from_pretrained(tiny_bert()[0], path)
    loaded = AdapterModel.from_pretrained(tiny_bert()[0], path, allow_nonfinite=True)
    held = dict(loaded.named_parameters())
    assert any(not torch.isfinite(p).all() for p in held.values())


# ----------------------------------------------------------------------------- command line
def _cli(capsys, *args):
    """``qiadapters ARGS`` in this process: (exit status, stdout, stderr)."""
    from qiadapters.cli import main
    capsys.readouterr()
    code = main([str(a) for a in args])  # returns: no exception escapes (no traceback)
    out = capsys.readouterr()  # stderr: our lines (not transformers' loading report)
    return code, out.out, "\n".join(line for line in out.err.splitlines()
                                     if line.startswith("qiadapters"))


def test_the_command_line_gives_one_line_and_exit_1_on_hostile_folders(saved, tmp_path,
                                                                          capsys):
    path, am = saved
    am.base_model.save_pretrained(tmp_path / "base")
    data = json.loads((path / "adapter_config.json").read_text())
    data.pop("layers")
    data.update(format_version=4, orders=[10], blocks=1)
    (path / "adapter_config.json").write_text(json.dumps(data))
    assert _cli(capsys, "info", path)[0] == 0  # info builds nothing: it shows the config
    merge = ("merge", "--model", tmp_path / "base", "--adapter", path, "--out",
             tmp_path / "merged")
    code, _, err = _cli(capsys, *merge)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "orders=(10,)" in err and "MAX_TABLE_ENTRIES" in err
    _rewrite(path, lambda t: t.to(torch.int64))
    code, _, err = _cli(capsys, "info", path)
    assert code == 1 and len(err.splitlines()) == 1 and "has dtype torch.int64" in err
    base = json.loads((tmp_path / "base" / "config.json").read_text())
    base["architectures"] = ["logging"]  # an attribute of transformers that is no model
    (tmp_path / "base" / "config.json").write_text(json.dumps(base))
    code, _, err = _cli(capsys, *merge)
    assert code == 1 and len(err.splitlines()) == 1 and "names no transformers class" in err


def test_info_prints_text_from_the_file_escaped(saved, capsys):
    path, _ = saved
    data = json.loads((path / "adapter_config.json").read_text())
    data["qiadapters_version"] = "0.3.2\x1b[31m\x07"
    (path / "adapter_config.json").write_text(json.dumps(data))
    code, out, _ = _cli(capsys, "info", path)
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "written by qiadapters 0.3.2\\x1b[31m\\x07" in out
