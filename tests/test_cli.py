"""The command line: every command's help, plan against built adapters, info against the
saved tensors, merge against the adapted model's own output, and one-line errors."""
import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

import qiadapters
from qiadapters import AdapterModel, HammingAdapter, HammingConfig
from qiadapters.cli import COMMANDS, main
from qiadapters.model import io
from qiadapters.cli.plan import plans
from qiadapters.testing import build, perturb, tiny_bert, tiny_mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=ROOT):
    """``python -m qiadapters ARGS`` in ``cwd``; the checkout is importable only from ``cwd``
    (a ``PYTHONPATH`` naming it is dropped), as for an installed package."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    keep = [p for p in paths if p and os.path.realpath(p) != os.path.realpath(ROOT)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(keep))
    return subprocess.run([sys.executable, "-m", "qiadapters", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def run_exit(args, capsys):
    """``main(args)`` for arguments argparse handles itself: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


def test_python_dash_m_runs_the_command_line():
    out = cli("--help")
    assert out.returncode == 0 and "usage: qiadapters" in out.stdout


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command, capsys):
    code, out, _ = run_exit([*([command] if command else []), "--help"], capsys)
    assert code == 0 and "usage: qiadapters" in out


@pytest.mark.parametrize("args, match", [
    (["plan", "--dim", "x", "--budget", "10"], "argument --dim: invalid int value: 'x'"),
    (["plan", "--budget", "10"], "the following arguments are required: --dim"),
    (["plan", "--dim", "64", "--budget", "10", "--orders", "1,a"], r"--orders '1,a' is not valid"),
    (["plan", "--dim", "64", "--budget", "10", "--parametrization", "qr"], "invalid choice: 'qr'"),
    (["bench", "nothing"], "invalid choice: 'nothing'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, match, capsys):
    code, _, err = run_exit(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("qiadapters") and " error: " in lines[0]
    assert re.search(match, lines[0]), lines[0]


def test_arguments_the_library_refuses_give_one_line_and_exit_2(tmp_path, capsys):
    """As argparse's own refusals (cli.md): a value, or a path, the command cannot take."""
    assert main(["plan", "--dim", "384", "--budget", "0"]) == 2
    assert main(["info", str(tmp_path)]) == 2
    assert main(["merge", "--model", str(tmp_path / "none"), "--adapter", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["verify", "--max-n", "1"]) == 2
    assert main(["merge", "--model", str(tmp_path), "--adapter", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2  # transformers' OSError: no config.json
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[:4] == [
        "qiadapters plan: error: budget=0 is out of range; valid: 1 <= budget <= inf",
        f"qiadapters info: error: '{tmp_path / 'adapter_config.json'}' does not exist; a saved "
        f"adapter directory holds adapter_config.json and adapter_model.safetensors",
        f"qiadapters merge: error: --model '{tmp_path / 'none'}' is not a folder",
        "qiadapters verify: error: --max-n=1 is not valid; valid: an integer >= 2"]
    assert len(errors) == 5 and errors[4].startswith("qiadapters merge: error: ")


@pytest.mark.parametrize("dim, budget", [(48, 300), (96, 500)])
def test_plan_rows_are_what_the_adapter_builds(dim, budget):
    rows = plans(dim, budget)
    assert rows and all(r["params"] <= budget for r in rows)
    assert [r["params"] for r in rows] == sorted((r["params"] for r in rows), reverse=True)
    for r in rows[:: max(1, len(rows) // 25)]:  # an even sample, every kind of row
        options = dict(orders=r["orders"], blocks=r["blocks"],
                       parametrization=r["parametrization"], share_blocks=r["shared"])
        if r["layout"] != "-":
            options["layout"] = r["layout"]
        layer = HammingAdapter(nn.Linear(dim, dim), **options)
        rot = layer.hamming["default"]
        assert sum(p.numel() for p in rot.parameters()) == r["params"], r
        lay = rot.block_layout
        assert (lay.n, lay.block_size, lay.pad, lay.tail) == (r["n"], r["block_size"], r["pad"],
                                                              r["tail"]), r


@pytest.mark.parametrize("dim, budget", [(96, 500), (384, 400)])
def test_plan_cost_is_what_the_products_count(dim, budget):
    """``macs``: multiply-adds per feature and token of applying ``D``, against torch's flop
    counter over the block route's products (blocks built, so no order goes mode-wise)."""
    from torch.utils.flop_counter import FlopCounterMode

    from qiadapters.circuits.blockdiag import apply_blocks

    rows = plans(dim, budget, orders=[(1,), (1, 2), (1, 2, 3)], parametrizations=["cayley"])
    tokens = 7
    routes = set()
    wide = [r for r in rows if r["blocks"] <= 2]  # large blocks: applied order by order
    for r in rows[:: max(1, len(rows) // 20)] + wide:
        layer = HammingAdapter(nn.Linear(dim, dim), orders=r["orders"], blocks=r["blocks"])
        rot = layer.hamming["default"]
        lay = rot.block_layout
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            blocks = rot.blocks()
        with counter:  # a fresh count: only the application
            counter.flop_counts.clear()
            apply_blocks(torch.randn(tokens, dim), blocks, lay)
        routes.add(lay.block_size ** 2 == r["macs"] * dim / r["blocks"])
        assert counter.get_total_flops() == 2 * tokens * round(r["macs"] * dim), r
    assert routes == {True, False}  # both routes among the rows sampled


def test_plan_prints_a_table(capsys):
    assert main(["plan", "--dim", "384", "--budget", "2000", "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("the 3 largest:") and len(out) == 6  # title, header, 3, default
    assert out[2].split()[:4] == ["1,980", "1", "30", "12"]  # 30 blocks of n=12, Cayley
    assert out[1].split()[9] == "MACs/f" and out[2].split()[9] == "11.2"  # 30 x 12^2 / 384


def test_info_lists_every_saved_tensor(tmp_path, capsys):
    am, _ = build(tiny_mlp, HammingConfig(target_modules=["fc1", "fc2"], modules_to_save=["head"]))
    am.save_pretrained(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    total = sum(p.numel() for n, p in am.named_parameters() if p.requires_grad)
    assert f"3 modules, 4 tensors, {total:,} parameters:" in out
    assert f"format {io.FORMAT_VERSION} (written by qiadapters {qiadapters.__version__})" in out
    for module in ("fc1", "fc2", "head"):
        assert f"  {module} " in out


def test_info_shows_each_layers_recorded_shape_and_layout(tmp_path, capsys):
    cfg = HammingConfig(target_modules=["fc1", "fc2"], layout_pattern={"fc2": {"blocks": 2}})
    am, _ = build(tiny_mlp, cfg)
    am.save_pretrained(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name, layer in am.adapter_layers():  # the live layers' own widths and layouts
        lay = layer.hamming["default"].block_layout
        base = layer.base_layer
        assert (f"  {name}: in={base.in_features}, out={base.out_features}, layout="
                f'{{"block_size": {lay.block_size}, "blocks": {lay.blocks}, "n": {lay.n}, '
                f'"orders": [1, 2], "parametrization": "cayley", "side": "output"}}') in out
    assert main(["info", os.path.join(ROOT, "tests", "data", "saved_by_0.3.2", "hamming")]) == 0
    assert "layers (as recorded" not in capsys.readouterr().out  # format 4: no record


def test_info_reads_a_format_1_mixture(capsys):
    folder = os.path.join(ROOT, "tests", "data", "saved_by_0.1.0", "mixture")
    assert main(["info", folder]) == 0
    out = capsys.readouterr().out
    assert "family: mixture (MixtureConfig); format 1 (written by qiadapters 0.1.0)" in out
    assert "experts.0.hamming.expert.weight" in out and "router.gate.weight" in out


def test_merge_writes_a_model_plain_transformers_loads(tmp_path):
    from transformers import BertForSequenceClassification

    model, inputs = tiny_bert()
    model.save_pretrained(tmp_path / "base")
    (tmp_path / "base" / "vocab.txt").write_text("[PAD]\n")  # a non-weight file travels along
    am, _ = build(tiny_bert, HammingConfig(target_modules=["query", "value"],
                                           modules_to_save=["classifier"]))
    perturb(am)
    am.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        expected = am(**inputs).logits
    assert main(["merge", "--model", str(tmp_path / "base"), "--adapter",
                 str(tmp_path / "adapter"), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "vocab.txt").read_text() == "[PAD]\n"
    merged = BertForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert not any("hamming" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, expected, atol=1e-5, rtol=1e-5)
    # a non-empty --out is refused unless --overwrite
    assert main(["merge", "--model", str(tmp_path / "base"), "--adapter",
                 str(tmp_path / "adapter"), "--out", str(tmp_path / "merged")]) == 2


def test_merge_refuses_a_family_that_does_not_change_weights(tmp_path, capsys):
    physics = pytest.importorskip("physics")
    model, _ = tiny_bert()
    model.save_pretrained(tmp_path / "base")
    am, _ = build(tiny_bert, physics.PhysicsConfig(target_modules=["query"], grid="sequence",
                                                   rank=2))
    am.save_pretrained(tmp_path / "adapter")
    assert main(["merge", "--model", str(tmp_path / "base"), "--adapter",
                 str(tmp_path / "adapter"), "--out", str(tmp_path / "merged")]) == 2
    assert "cannot be merged" in capsys.readouterr().err
    assert not (tmp_path / "merged").exists()


def test_verify_and_bench_run_their_modules(capsys, monkeypatch):
    assert main(["verify", "--max-n", "3"]) == 0
    assert "worst deviation from PennyLane" in capsys.readouterr().out
    monkeypatch.chdir(ROOT)
    assert main(["bench", "circuits", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out
    out = cli("bench", "circuits", "--help", cwd="/")  # outside a source checkout
    assert out.returncode == 1 and "source checkout" in out.stderr
