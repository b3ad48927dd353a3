"""The how-to pages work for a user who installed the package: their code runs in a fresh
interpreter that can import ``qiadapters`` and ``physics`` (and the installed third-party
packages) but nothing else of the repository (``benchmarks/`` and ``tests/`` are not
installed), and the torchrun script of distributed.md trains on two ranks exactly as on one."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
HOWTOS = sorted((ROOT / "docs" / "howto").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)  # as tests/test_docs.py reads pages
INSTALLED = ("qiadapters", "physics")  # pyproject's packages


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def as_installed(tmp_path: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in ``cwd`` whose path holds the installed packages
    (linked into a folder of their own) and not the repository root."""
    site = tmp_path / "site"
    if not site.exists():
        site.mkdir()
        for package in INSTALLED:
            (site / package).symlink_to(ROOT / package, target_is_directory=True)
    cwd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1",
               QIADAPTERS_DOCS_STEPS="3", PYTHONSAFEPATH="1")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_repository_is_not_importable_there(tmp_path):
    probe = as_installed(tmp_path, "import qiadapters, physics, sys\n"
                                   "import benchmarks", tmp_path / "work")
    assert "No module named 'benchmarks'" in probe.stderr


def test_howto_pages_run_with_only_the_installed_packages(tmp_path):
    """Each page's blocks in order, in one namespace per page and a folder of its own."""
    pages = [p for p in HOWTOS if blocks(p)]
    assert {"finetune_minilm.md", "distributed.md"} <= {p.name for p in pages}
    runner = "\n".join(
        f"import os; os.makedirs({p.stem!r}); os.chdir({p.stem!r})\n"
        f"namespace = {{'__name__': 'howto'}}\n"
        f"for i, code in enumerate({blocks(p)!r}):\n"
        f"    exec(compile(code, '{p.name} block ' + str(i + 1), 'exec'), namespace)\n"
        f"os.chdir('..')"
        for p in pages)
    run = as_installed(tmp_path, runner, tmp_path / "work")
    assert run.returncode == 0, run.stderr[-3000:]


def test_distributed_script_on_two_ranks_equals_one_process(tmp_path, torchrun, monkeypatch):
    """The page's script under ``torchrun --nproc_per_node=2`` saves the adapter a single
    process saves (the same global batches; DDP averages the slices' gradients)."""
    (script,) = blocks(ROOT / "docs" / "howto" / "distributed.md")
    single = as_installed(tmp_path, script, tmp_path / "one")
    assert single.returncode == 0, single.stderr[-3000:]
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "train_tiny.py").write_text(script)
    monkeypatch.chdir(tmp_path / "two")  # the ranks write ddp-out/ in their working folder
    torchrun(tmp_path / "two" / "train_tiny.py")
    one = load_file(tmp_path / "one" / "ddp-out" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "ddp-out" / "adapter_model.safetensors")
    assert one.keys() == two.keys() and len(one) >= 5  # 4 adapted layers and the head
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-6, rtol=0)
    assert any((t != 0).any() for name, t in one.items() if "hamming" in name)  # it trained
