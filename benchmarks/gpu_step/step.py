"""A training step at a shape people train on GPUs: a Llama-like decoder of about 0.5B parameters.

    python -m benchmarks.gpu_step                      # one GPU: results/gpu_step.csv (< 8 min)
    python -m benchmarks.gpu_step --tiny --out /tmp/g  # a tiny model on the CPU (seconds)
    python -m benchmarks.gpu_step --modes eager --targets q,v --methods lora-r16,hamming-bs32-fold
    python -m benchmarks.gpu_step --methods hamming-bs32,hamming-bs32-triton  # Triton kernels

**Model.**  ``transformers.LlamaConfig``, random init (speed does not depend on the weights):
hidden 1024, FFN 4096, 24 layers, 16 heads, vocabulary 32,000 (0.47B parameters), bfloat16,
SDPA attention, batch 2 x 1024 tokens of random ids, the causal-LM loss on them.
``--tiny``: hidden 64, 2 layers, 2 x 32 tokens.

**Rows.**  Targets ``all-linear`` (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``,
``gate_proj``, ``up_proj``, ``down_proj``: 168 layers) and ``q,v`` (48), each with peft LoRA
r=16 (the benchmarks' ``lora_alpha = r``, no dropout), peft OFT (blocks of 32, peft's
defaults otherwise), and Hamming blocks of 32 (orders (1, 2), Cayley) by the activation
route and by the fold route (:mod:`qiadapters.adapters.hamming.fold_route`), with the
library's Triton kernels off (the eager route) and, where ``triton`` imports, on (the
``-triton`` rows: :mod:`qiadapters.circuits.kernels`, the order-2 compounds and the per-block
products; CUDA, or the CPU under ``TRITON_INTERPRET=1``); ``eager`` and
``compile`` (regional: each decoder layer ``.compile()``-d, the inductor backend, as
transformers and accelerate compile decoders: one graph reused by the 24 layers, compile
time a fraction of the whole model's).
AdamW (``foreach``), no dropout.

**Measured.**  After ``--warmup`` steps (the compilation happens there; its seconds are
``warmup_s``), ``--steps`` steps timed by CUDA events (the CPU: the wall clock): ``step_ms``,
``tokens_per_s``; ``peak_mib``: ``torch.cuda.max_memory_allocated`` over the timed steps,
``growth_mib``: that minus what was allocated before them (the model, the adapter, the
optimizer state).  ``step_vs_lora`` and ``peak_vs_lora``: against LoRA r=16 on the same
targets and mode.  Every row names the device (``torch.cuda.get_device_name``).  A
``--budget`` (seconds, default 390) skips the rows left when it runs out (``status`` says
so; a row started before then finishes), so one run fits an 8-minute slot; a row that fails
says why in ``status`` and the others still run.  The base is built once on the CPU and each
row moves a copy to the device, so a row's peak is its own model's.

**Results.**  GPU rows still open: the session that wrote this script had no GPU; the
``--tiny`` configuration runs in the test suite (``tests/test_gpu_step.py``).  Targets of
the rows: the eager step at most 1.0x LoRA r=16's, the compiled step at most 0.9x, peak
memory at most LoRA's.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

from ..common.constants import RESULTS
from ..common.reporting import write_csv

SIZES = {
    "llm": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                num_attention_heads=16, num_key_value_heads=16, vocab_size=32000,
                batch=2, seq=1024),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, vocab_size=256, batch=2, seq=32),
}
TARGETS = {"all-linear": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                          "down_proj"],
           "q,v": ["q_proj", "v_proj"]}
#: in the order they run (a short budget keeps the first): the reference, the fold route
#: (the launch-light one), the activation route, OFT
METHODS = ["lora-r16", "hamming-bs32-fold", "hamming-bs32", "oft-b32"]
#: the Hamming rows again with the Triton kernels on (run where triton imports: methods_for)
TRITON_METHODS = ["hamming-bs32-fold-triton", "hamming-bs32-triton"]
REFERENCE = "lora-r16"
MODES = ["eager", "compile"]
COLUMNS = ["device", "size", "params", "batch", "seq", "dtype", "targets", "method", "mode",
           "status", "step_ms", "tokens_per_s", "step_vs_lora", "peak_mib", "growth_mib",
           "peak_vs_lora", "warmup_s", "graphs", "trainable", "adapted_layers", "torch",
           "transformers", "peft"]


def build_base(size: str, device: str, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """The random-init Llama-like decoder of ``size`` on ``device`` in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {k: v for k, v in SIZES[size].items() if k not in ("batch", "seq")}
    config = LlamaConfig(**shape, max_position_embeddings=4096, attention_dropout=0.0,
                         tie_word_embeddings=False, use_cache=False)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.to(dtype)


def methods_for(device: str) -> list[str]:
    """The default rows on ``device``: :data:`METHODS`, and :data:`TRITON_METHODS` where the
    kernels can run there (``triton`` imports; CUDA, or the CPU under Triton's interpreter)."""
    from qiadapters.circuits import kernels

    with kernels.using("on"):
        runs = kernels.use_kernels(torch.empty(0, device=device))
    return METHODS + (TRITON_METHODS if runs else [])


def attach(method: str, model: nn.Module, targets: list[str]) -> nn.Module:
    """``method`` (one of :data:`METHODS` or :data:`TRITON_METHODS`: the kernels are set
    by :func:`run_row`) on ``model``'s ``targets``."""
    method = method.removesuffix("-triton") if method in TRITON_METHODS else method
    if method == "lora-r16":
        from peft import get_peft_model

        from ..common.registry import lora_config  # the benchmarks' one LoRA definition

        return get_peft_model(model, lora_config(16, target_modules=targets,
                                                 modules_to_save=None))
    if method == "oft-b32":
        from peft import OFTConfig, get_peft_model

        return get_peft_model(model, OFTConfig(r=0, oft_block_size=32, module_dropout=0.0,
                                               target_modules=targets))
    if method in ("hamming-bs32", "hamming-bs32-fold"):
        from qiadapters import HammingConfig, get_adapter_model
        from qiadapters.adapters.hamming import set_route

        am = get_adapter_model(model, HammingConfig(target_modules=targets, block_size=32))
        if method.endswith("-fold"):
            set_route(am, "fold")
        return am
    raise ValueError(f"method={method!r} is not valid; valid: "
                     f"{', '.join(METHODS + TRITON_METHODS)}")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder's ``layers`` list, under whichever wrapper."""
    for name, module in model.named_modules():
        if name.endswith("model.layers") and isinstance(module, nn.ModuleList):
            return module
    raise ValueError("no decoder layers (a '...model.layers' ModuleList) found")


def _adapted(model: nn.Module) -> int:
    from qiadapters.adapters.layer import AdapterLayer

    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is a benchmark dependency
        BaseTunerLayer = AdapterLayer
    return sum(1 for m in model.modules() if isinstance(m, (AdapterLayer, BaseTunerLayer)))


def run_row(base: nn.Module, method: str, targets: str, mode: str, device: str, batch: int,
            seq: int, warmup: int, steps: int, backend: str = "inductor") -> dict:
    """One row: a copy of ``base`` with ``method``, ``warmup`` steps, then ``steps`` timed;
    the Triton kernels on for :data:`TRITON_METHODS`, off for every other row."""
    from qiadapters.circuits import kernels

    with kernels.using("on" if method in TRITON_METHODS else "off"):
        return _run_row(base, method, targets, mode, device, batch, seq, warmup, steps, backend)


def _run_row(base, method, targets, mode, device, batch, seq, warmup, steps, backend):
    model = attach(method, copy.deepcopy(base).to(device), TARGETS[targets])
    model.train()
    if mode == "compile":
        torch._dynamo.reset()
        for layer in decoder_layers(model):
            layer.compile(backend=backend)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, foreach=True)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, base.config.vocab_size, (batch, seq), generator=gen).to(device)
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]  # a process-wide count, kept across resets
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    row = {"trainable": sum(p.numel() for p in params), "adapted_layers": _adapted(model),
           "warmup_s": round(warmup_s, 1)}
    if mode == "compile":  # graphs compiled: the first layer's (its input needs no gradient)
        row["graphs"] = counters["stats"]["unique_graphs"] - graphs  # and the others' one
    if cuda:
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize()
        ms = begin.elapsed_time(end) / steps
        peak = torch.cuda.max_memory_allocated()
        row.update(peak_mib=round(peak / 2 ** 20, 1),
                   growth_mib=round((peak - baseline) / 2 ** 20, 1))
    else:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        ms = 1e3 * (time.perf_counter() - start) / steps
        row.update(peak_mib="", growth_mib="")
    row.update(step_ms=round(ms, 2), tokens_per_s=round(batch * seq / (ms / 1e3), 1),
               status="ok")
    del model, opt
    if cuda:
        torch.cuda.empty_cache()
    return row


def run(size: str = "llm", device: str | None = None, methods=None, targets=tuple(TARGETS),
        modes=MODES, warmup: int = 3, steps: int = 10, budget: float = 390.0,
        out: Path | None = None, backend: str = "inductor") -> list[dict]:
    """Every row (eager rows first, so a short budget keeps them), written to
    ``out/gpu_step.csv``; returns the rows (``methods`` by default: :func:`methods_for` the
    device).  Compiling takes most of the time (on two CPU cores inductor took 90-160 s per
    row of the tiny model; a GPU host compiles one decoder layer's graphs, forward and
    backward, per row)."""
    import peft
    import transformers

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    methods = methods_for(device) if methods is None else methods
    cuda = torch.device(device).type == "cuda"
    dtype = torch.bfloat16
    began = time.perf_counter()
    base = build_base(size, "cpu", dtype)  # each row moves its own copy to the device
    base.requires_grad_(False)
    shape = SIZES[size]
    common = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "size": size,
              "params": sum(p.numel() for p in base.parameters()), "batch": shape["batch"],
              "seq": shape["seq"], "dtype": "bfloat16", "torch": torch.__version__,
              "transformers": transformers.__version__, "peft": peft.__version__}
    rows = []
    for mode in modes:
        for target in targets:
            for method in methods:
                row = dict(common, targets=target, method=method, mode=mode)
                if time.perf_counter() - began > budget:
                    row["status"] = f"skipped: the {budget:.0f} s budget ran out"
                else:
                    try:
                        row.update(run_row(base, method, target, mode, device, shape["batch"],
                                           shape["seq"], warmup, steps, backend))
                    except torch.cuda.OutOfMemoryError:
                        row["status"] = "out of memory"
                    except Exception as error:  # one failing row must not lose the others
                        row["status"] = f"error: {type(error).__name__}: {str(error)[:300]}"
                    if cuda:
                        torch.cuda.empty_cache()
                rows.append(row)
                print({k: row.get(k) for k in ("targets", "method", "mode", "status", "step_ms",
                                               "peak_mib", "warmup_s", "graphs")}, flush=True)
    for row in rows:
        ref = next((r for r in rows if r["method"] == REFERENCE and r["targets"] == row["targets"]
                    and r["mode"] == row["mode"] and r.get("status") == "ok"), None)
        if ref is not None and row.get("status") == "ok":
            row["step_vs_lora"] = round(row["step_ms"] / ref["step_ms"], 3)
            if cuda:
                row["peak_vs_lora"] = round(row["peak_mib"] / ref["peak_mib"], 3)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "gpu_step.csv", rows, COLUMNS, ignore_extra=True)
    return rows


def _names(text: str, valid, what: str) -> list[str]:
    names = [t for t in text.split(";" if what == "targets" else ",") if t] if text else []
    bad = [n for n in names if n not in valid]
    if bad:
        raise SystemExit(f"--{what} {text!r}: {bad} not valid; valid: {', '.join(valid)}")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny model, on the CPU")
    parser.add_argument("--device", default=None,
                        help="default: cuda if available (cpu with --tiny)")
    parser.add_argument("--methods", default="",
                        help="default: every method (the -triton ones where triton runs)")
    parser.add_argument("--targets", default=";".join(TARGETS),
                        help="target sets separated by ';' (all-linear;q,v)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--budget", type=float, default=390.0,
                        help="seconds after which the rows left are skipped")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    run("tiny" if args.tiny else "llm", args.device or ("cpu" if args.tiny else None),
        _names(args.methods, METHODS + TRITON_METHODS, "methods") or None,
        _names(args.targets, TARGETS, "targets"), _names(args.modes, MODES, "modes"),
        args.warmup, args.steps, args.budget, Path(args.out), args.backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
