"""The sections of the speed benchmark (:mod:`benchmarks.speed.run` is the command and
documents each): ``run_<section>(args, out)`` measures one and writes its CSV through
``out(stem, ext) -> Path``."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..common.reporting import write_csv
from ..common.timing import interleaved
from .minilm import DEFAULT, OURS, REFERENCE
from .report import plot_scaling

SECTIONS = ("step", "targets", "fixed", "inference", "scaling", "blocks", "memory")
#: The sections that run on ``--device cuda``.
DEVICE_SECTIONS = ("step", "targets", "fixed")


def _write_csv(path: Path, rows: list[dict]) -> None:
    print(f"wrote {write_csv(path, rows)}")


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def _contenders(args, base, names, targets, batch_size: int, seq: int):
    """Each method on its own copy of ``base`` (``targets`` as
    :func:`~benchmarks.speed.minilm.attach` takes them): the step functions on one shared
    batch, the configurations that ran and the trainable counts, by name."""
    from .minilm import attach, minilm_batch, train_step_fn, trainable_count

    batch = minilm_batch(batch_size, seq)
    fns, infos, counts = {}, {}, {}
    for name in names:
        model, infos[name] = attach(name, copy.deepcopy(base), targets)
        counts[name] = trainable_count(model)
        fns[name] = train_step_fn(model, batch, device=args.device)
    return fns, infos, counts


# ------------------------------------------------------------------------------- step
def run_step(args, out) -> None:
    from ..common.data import load_minilm
    from .minilm import METHODS, QUICK_METHODS

    names = QUICK_METHODS if args.quick else METHODS
    base, _ = load_minilm(num_labels=26)
    fns, infos, counts = _contenders(args, base, names, None, args.batch, args.seq)
    reps = 3 if args.quick else 5
    t = interleaved(fns, reps=reps, warmup=1, desc="MiniLM training steps")
    # The 1.05x target is within the noise of a few rounds: pair ours and LoRA for more.
    extra = 3 if args.quick else 8
    t.extend(interleaved({k: fns[k] for k in (OURS, REFERENCE)}, reps=extra, warmup=0,
                         desc="Hamming vs LoRA, paired"))
    rows = []
    for name in names:
        rows.append({"method": name, "config": infos[name], "trainable": counts[name],
                     "median_ms": _ms(t.median(name)), "median_cpu_ms": _ms(t.cpu_median(name)),
                     "ratio_vs_lora": round(t.paired_ratio(name, REFERENCE), 4),
                     "rounds": t.rounds(name), "threads": t.threads,
                     "batch": args.batch, "seq": args.seq, "device": args.device})
    _write_csv(out("speed_step", "csv"), rows)
    if args.device == "cpu":
        profile_steps(fns, out("speed_profile", "txt"), steps=1 if args.quick else 2)


# ------------------------------------------------------------------------------- targets
def run_targets(args, out) -> None:
    """Every case of :data:`~benchmarks.speed.minilm.CASES`: its contenders' steps
    interleaved, ratios vs LoRA and OFT, and peak memory growth per method."""
    from ..common.data import load_minilm
    from .minilm import CASES, OFT, case_methods, case_name

    base, _ = load_minilm(num_labels=26)
    rows = []
    # --quick: the small batch only (the large one's all-linear steps take seconds each)
    for targets, batch_size, seq in [c for c in CASES if not args.quick or c[1] <= 8]:
        names, case = case_methods(targets), case_name(targets, batch_size, seq)
        measured = names if not args.quick else [DEFAULT, REFERENCE]
        t, infos, counts, memory = time_case(args, base, names, case, targets, batch_size,
                                             seq, measured)
        for name in names:
            rows.append({**case_row(case, name, infos, counts, t),
                         "ratio_vs_lora": round(t.paired_ratio(name, REFERENCE), 4),
                         "ratio_vs_oft": round(t.paired_ratio(name, OFT), 4),
                         "peak_growth_mib": round(memory[name], 1) if name in memory else "",
                         "growth_vs_lora": round(memory[name] / memory[REFERENCE], 4)
                         if name in memory else "",
                         "rounds": t.rounds(name), "threads": t.threads,
                         "device": args.device})
    _write_csv(out("speed_targets", "csv"), rows)


def time_case(args, base, names, case: str, targets, batch_size: int, seq: int, measured):
    """One case of ``names``: their steps interleaved (3 rounds with ``--quick``, else 20),
    then the peak memory growth of ``measured``; ``(timings, configs, trainable counts,
    memory growth in MiB)``."""
    fns, infos, counts = _contenders(args, base, names, targets, batch_size, seq)
    t = interleaved(fns, reps=3 if args.quick else 20, warmup=1, alternate=True, desc=case)
    del fns  # the timed models go before the memory of each is measured alone
    return t, infos, counts, case_memory(args, base, measured, targets, batch_size, seq)


def case_row(case: str, name: str, infos: dict, counts: dict, t) -> dict:
    """The columns every row of a timed case starts with."""
    return {"case": case, "method": name, "config": infos[name], "trainable": counts[name],
            "median_ms": _ms(t.median(name))}


def run_fixed(args, out) -> None:
    """What each contender adds to the head-only step at one sequence of 32 tokens
    (:data:`~benchmarks.speed.minilm.FIXED_CASES`): the adapters' per-step overhead."""
    from ..common.data import load_minilm
    from .minilm import FIXED_CASES, OFT, case_methods, case_name

    base, _ = load_minilm(num_labels=26)
    rows = []
    for targets, batch_size, seq in FIXED_CASES:
        names, case = case_methods(targets), case_name(targets, batch_size, seq)
        fns, _, counts = _contenders(args, base, names, targets, batch_size, seq)
        t = interleaved(fns, reps=5 if args.quick else 40, warmup=2, alternate=True, desc=case)
        lora_adds = t.paired_difference(REFERENCE, "head")
        for name in names:
            adds = t.paired_difference(name, "head")
            rows.append({"case": case, "method": name, "trainable": counts[name],
                         "median_ms": _ms(t.median(name)), "adds_to_head_ms": _ms(adds),
                         "adds_vs_lora": round(adds / lora_adds, 3) if name != "head" else "",
                         "ratio_vs_lora": round(t.paired_ratio(name, REFERENCE), 4),
                         "ratio_vs_oft": round(t.paired_ratio(name, OFT), 4),
                         "rounds": t.rounds(name), "threads": t.threads,
                         "device": args.device})
        del fns
    _write_csv(out("speed_fixed", "csv"), rows)


def case_memory(args, base, names, targets, batch, seq) -> dict[str, float]:
    """Peak memory growth (MiB) of each method's step in one case: a fresh process per
    method on CPU (:mod:`benchmarks.speed.memory`), CUDA allocator statistics on a GPU."""
    if args.device != "cpu":
        from .memory import measure_cuda
        return {name: measure_cuda(name, base, batch=batch, seq=seq,
                                   targets=targets)["peak_growth_mib"] for name in names}
    extra = ["--targets", targets if isinstance(targets, str) else ",".join(targets)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda name: memory_worker(args, name, batch, seq, extra), names)
        return {r["method"]: r["peak_growth_mib"] for r in results}


def _profile(fn, steps: int):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    return prof.key_averages()


def profile_steps(fns, path: Path, steps: int) -> None:
    """Top ops by self CPU time of our step and LoRA's, and where ours spends more."""
    tables = {name: _profile(fns[name], steps) for name in (OURS, REFERENCE)}
    lines = [f"torch.profiler, CPU, {steps} training step(s) each (forward + backward + AdamW "
             f"+ zero_grad), MiniLM batch 32 x 64, {torch.get_num_threads()} thread(s).", ""]
    for name, avg in tables.items():
        lines += [f"== {name}: top ops by self CPU time ==",
                  avg.table(sort_by="self_cpu_time_total", row_limit=25), ""]
    own = {e.key: e for e in tables[OURS]}
    ref = {e.key: e for e in tables[REFERENCE]}
    diff = sorted(((own[k].self_cpu_time_total - (ref[k].self_cpu_time_total if k in ref else 0),
                    k) for k in own), reverse=True)[:20]
    lines += [f"== ops where {OURS} spends more self CPU than {REFERENCE} (ms per step) ==",
              f"{'op':58s} {'ours':>9s} {'lora':>9s} {'extra':>9s} {'calls':>7s}"]
    for extra, key in diff:
        mine = own[key].self_cpu_time_total / 1e3 / steps
        theirs = (ref[key].self_cpu_time_total / 1e3 / steps) if key in ref else 0.0
        lines.append(f"{key[:58]:58s} {mine:9.2f} {theirs:9.2f} {extra / 1e3 / steps:9.2f} "
                     f"{own[key].count // steps:7d}")
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


# ------------------------------------------------------------------------------- inference
def run_inference(args, out) -> None:
    from ..common.data import load_minilm
    from .minilm import attach, minilm_batch

    base, _ = load_minilm(num_labels=26)
    batch = minilm_batch(args.batch, args.seq)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    gen = torch.Generator().manual_seed(5)

    def hamming_model():
        am, _ = attach(OURS, copy.deepcopy(base))
        with torch.no_grad():  # a trained-looking adapter, D != I
            for p in am.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        return am

    def lora_model():
        pm, _ = attach(REFERENCE, copy.deepcopy(base))
        with torch.no_grad():
            for name, p in pm.named_parameters():
                if "lora_B" in name:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        return pm

    models = {"base": copy.deepcopy(base), "base_copy": copy.deepcopy(base),
              "hamming_merged": hamming_model().merge_and_unload(),
              "hamming_unmerged": hamming_model(), "lora_unmerged": lora_model()}

    def forward(model):
        model.eval()

        def call():
            with torch.no_grad():
                model(**inputs)
        return call

    reps = 6 if args.quick else 12
    t = interleaved({k: forward(m) for k, m in models.items()}, reps=reps, warmup=1,
                    desc="inference")
    refs = {"base": "base", "base_copy": "base", "hamming_merged": "base",
            "hamming_unmerged": "lora_unmerged", "lora_unmerged": "lora_unmerged"}
    rows = [{"model": k, "module_type": type(models[k]).__name__,
             "median_ms": _ms(t.median(k)), "median_cpu_ms": _ms(t.cpu_median(k)),
             "reference": refs[k], "ratio_vs_reference": round(t.paired_ratio(k, refs[k]), 4),
             "rounds": t.rounds(k), "threads": t.threads} for k in models]
    _write_csv(out("speed_inference", "csv"), rows)


# ------------------------------------------------------------------------------- scaling
def scaling_grid(quick: bool, big: bool) -> list[tuple[int, int]]:
    if quick:
        return [(384, 256), (384, 1024), (1024, 256), (4096, 256)]
    cells = [(d, t) for d in (384, 768, 1024, 2048, 4096) for t in (256, 1024, 4096)]
    if big:
        return cells
    # The two largest cells (4096 tokens at d >= 2048) alone would cost over 10 minutes on
    # 2 busy cores; d = 4096 is still measured at 256 and 1024 tokens.
    return [(d, t) for d, t in cells if not (t == 4096 and d >= 2048)]


def run_scaling(args, out) -> None:
    from tqdm import tqdm

    from . import scaling as sc

    rows = []
    cells = scaling_grid(args.quick, args.big)
    for d, tokens in tqdm(cells, desc="scaling grid"):
        fns = sc.stack_steps(d, tokens)
        heavy = d * d * tokens >= 1024 * 1024 * 4096
        reps = 2 if heavy else (3 if args.quick else 5)
        t = interleaved(fns, reps=reps, warmup=1)
        for name in fns:
            rows.append({"d": d, "tokens": tokens, "method": name,
                         "trainable": sc.trainable(d, name),
                         "median_ms": _ms(t.median(name)),
                         "median_cpu_ms": _ms(t.cpu_median(name)),
                         "ratio_vs_lora": round(t.paired_ratio(name, sc.LORA), 4),
                         "ratio_vs_dense": round(t.paired_ratio(name, sc.DENSE), 4),
                         "rounds": t.rounds(name), "threads": t.threads})
        del fns
    _write_csv(out("speed_scaling", "csv"), rows)  # plotted by run_blocks, which follows


def run_blocks(args, out) -> None:
    """Block building alone vs block size, and split out of a step at each token count."""
    from tqdm import tqdm

    from . import scaling as sc

    block_rows = []
    dims = sorted({d for d, _ in scaling_grid(args.quick, args.big)})
    token_list = (256, 2048) if args.quick else (256, 1024, 4096)
    for d in tqdm(dims, desc="block building"):
        layer = sc.hamming_layer(d)
        lay = layer.hamming["default"].block_layout
        alone = interleaved({"build": sc.build_fn(layer)}, reps=9, warmup=2)
        split = sc.split_times(layer, token_list, reps=5 if args.quick else 9)
        for tokens, t in split.items():
            block_rows.append({"d": d, "block_size": lay.block_size, "n": lay.n,
                               "blocks": lay.blocks, "params": layer.hamming["default"].n_params,
                               "tokens": tokens, "build_alone_ms": _ms(alone.median("build")),
                               "build_in_step_ms": _ms(t["build"]),
                               "build_in_step_min_ms": _ms(t["build_min"]),
                               "apply_ms": _ms(t["apply"]), "threads": alone.threads})
    _write_csv(out("speed_blocks", "csv"), block_rows)
    plot_scaling(out("speed_blocks", "csv").parent)


# ------------------------------------------------------------------------------- memory
def memory_worker(args, name: str, batch: int, seq: int, extra=()) -> dict:
    """:mod:`benchmarks.speed.memory` for one method in a fresh process: its JSON result."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(args.threads),
               PYTHONWARNINGS="ignore")
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "benchmarks.speed.memory", name, "--batch", str(batch),
           "--seq", str(seq), *extra]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"memory worker for {name} failed:\n{proc.stderr[-2000:]}")


def run_memory(args, out) -> None:
    from tqdm import tqdm

    from .minilm import METHODS

    names = [OURS, REFERENCE] if args.quick else METHODS

    def measure(name):
        return memory_worker(args, name, args.batch, args.seq)

    # Memory is per process, so two workers at a time do not disturb each other's numbers.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(tqdm(pool.map(measure, names), total=len(names),
                            desc="memory (one process per method)"))
    lora = next(r for r in results if r["method"] == REFERENCE)
    rows = []
    for r in results:
        r = dict(r)
        r["growth_vs_lora"] = round(r["peak_growth_mib"] / lora["peak_growth_mib"], 4)
        r["peak_vs_lora"] = round(r["peak_mib"] / lora["peak_mib"], 4)
        for k in ("baseline_mib", "peak_mib", "peak_growth_mib", "retained_growth_mib"):
            r[k] = round(r[k], 1)
        rows.append(r)
    _write_csv(out("speed_memory", "csv"), rows)


