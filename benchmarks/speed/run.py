"""Training speed and memory of Hamming adapters against peft's methods and the paper's
dense construction.

    python -m benchmarks.speed --threads 1     # the committed files (~20 min on 2 cores; see
                                               # docs/speed.md for why --threads 1)
    python -m benchmarks.speed --quick         # smaller grid, fewer methods (< 5 min)
    python -m benchmarks.speed --only step     # one section (step, targets, fixed, inference,
                                               # scaling, blocks, memory)
    python -m benchmarks.speed --device cuda   # step and targets on a GPU (CUDA memory stats)

Methods are registry names (:mod:`benchmarks.common.registry`; the list is
:data:`benchmarks.speed.minilm.METHODS`).  Sections (each writes its own CSV under
``benchmarks/results/``, ``benchmarks/results/quick/`` for ``--quick``, a ``cuda/`` subfolder
of either for ``--device cuda``; the summary and its
PASS/FAIL lines (:mod:`benchmarks.speed.report`) are rebuilt from whatever CSVs exist, so a
section can be re-run alone):

* ``step``: forward + backward + AdamW + zero_grad of all-MiniLM-L6-v2 (batch 32, sequence
  64, random token ids, 26-way head trainable for every method), one deepcopy of the base
  per method, contenders interleaved; plus ``torch.profiler`` tables of our step and LoRA's
  (``speed_profile.txt``).
* ``targets``: the speed targets' cases (:data:`benchmarks.speed.minilm.CASES`: query/value
  and all-linear targets, batch 8 x 32 and 32 x 64): Hamming vs peft LoRA r=8 vs peft OFT
  (block 32) vs head only, interleaved per case, and each method's peak memory growth
  (``speed_targets.csv``; PASS/FAIL per case: step <= 1.0x OFT and <= 1.05x LoRA, memory
  growth <= 1.05x LoRA's).  ``--quick``: batch 8 x 32 only, 3 rounds, memory of Hamming and
  LoRA only.
* ``fixed``: the per-step overhead of each adapter: the targets' contenders at one sequence
  of 32 tokens (:data:`benchmarks.speed.minilm.FIXED_CASES`), interleaved, and what each
  adds to the head-only step (median of per-round differences, ms) next to LoRA's
  (``speed_fixed.csv``; no target: it says how much of a small batch's ratio is overhead).
* ``inference``: ``no_grad`` eval forward: merged Hamming (``merge_and_unload``) vs the base
  model (and the base against a second copy of itself: the noise floor); unmerged Hamming vs
  unmerged LoRA.
* ``scaling``: a stack of 4 frozen ``nn.Linear(d, d)``: Hamming vs LoRA r=8 vs the dense
  construction over ``d`` and tokens (log-log plot); always followed by ``blocks``:
* ``blocks``: the cost of building the blocks alone vs block size, and split out of a real
  step at each token count.
* ``memory``: peak RSS growth of one training step, one fresh process per method
  (:mod:`benchmarks.speed.memory` documents the method).

``--device cuda`` runs ``step``, ``targets`` and ``fixed`` on the GPU (every step ends with a
``torch.cuda.synchronize``, memory is ``torch.cuda.max_memory_allocated``); the other
sections are CPU only.

All timings: :func:`benchmarks.common.timing.interleaved` with ``--threads`` intra-op threads,
contenders called round-robin after a warm-up, medians of wall and CPU time; ratios are
medians of per-round (paired) ratios.  Only ratios from one run are meaningful on a shared
machine, never absolute times.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..common.constants import results_dir
from .report import summarize
from .sections import (DEVICE_SECTIONS, SECTIONS, run_blocks, run_fixed, run_inference,
                       run_memory, run_scaling, run_step, run_targets)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer methods, smaller grid")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run only this section (repeatable)")
    parser.add_argument("--big", action="store_true",
                        help="scaling: include the two largest cells (4096 tokens at d = 2048, 4096)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help=f"where the {' and '.join(DEVICE_SECTIONS)} sections run")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available on this machine")
        bad = [s for s in (args.only or ()) if s not in DEVICE_SECTIONS]
        if bad:
            parser.error(f"--only {bad[0]} runs on CPU only; with --device {args.device} "
                         f"valid sections are {', '.join(DEVICE_SECTIONS)}")
    torch.set_num_threads(args.threads)
    # GPU results go to a subfolder, so they never mix with the CPU run's CSVs
    folder = results_dir(args.quick) / ("cuda" if args.device != "cpu" else "")

    def out(stem: str, ext: str) -> Path:
        return folder / f"{stem}.{ext}"

    start = time.perf_counter()
    runners = {"step": run_step, "targets": run_targets, "fixed": run_fixed,
               "inference": run_inference,
               "scaling": run_scaling, "blocks": run_blocks, "memory": run_memory}
    sections = list(args.only or (SECTIONS if args.device == "cpu" else DEVICE_SECTIONS))
    if "scaling" in sections and "blocks" not in sections:
        sections.insert(sections.index("scaling") + 1, "blocks")  # scaling includes blocks
    for section in sections:
        t0 = time.perf_counter()
        runners[section](args, out)
        print(f"[{section}: {time.perf_counter() - t0:.0f} s]", flush=True)
    text = summarize(folder)
    flags = (" --quick" if args.quick else "") + (f" --device {args.device}"
                                                 if args.device != "cpu" else "")
    header = f"<!-- generated by `python -m benchmarks.speed{flags}`, {args.threads} thread(s) -->\n"
    out("speed_summary", "md").write_text(header + text)
    print(text)
    print(f"[total {time.perf_counter() - start:.0f} s]")


if __name__ == "__main__":
    main()
