"""Throughput of one mixed-adapter batch against one batch per adapter.

The MiniLM architecture (all-MiniLM-L6-v2's BERT config: 6 layers, hidden 384; random
weights, which do not change the cost) for sequence classification, four adapters on
``query`` / ``value``, inference (eval, ``no_grad``).  For ``rows`` rows per adapter:

* mixed: ONE call ``model(**batch, adapter_names=[a, a, ..., b, ..., d])`` of ``4 * rows``;
* separate: four calls of ``rows`` rows, ``set_adapter`` before each.

The two are timed interleaved (mixed, separate, mixed, ...), ``--repeats`` times each, so
that load from other processes on the machine falls on both alike; the ratio of the medians
is what to read.  Qiadapters' Hamming adapters and peft's LoRA r=8 (which serves mixed
batches the same way) run the same protocol.

    python -m benchmarks.mixed_batch --threads 1      # the committed files
    python -m benchmarks.mixed_batch --quick          # smoke check, results/quick/
"""
from __future__ import annotations

import json
import statistics
import time

import torch

from .common import cli
from .common.constants import TARGETS
from .common.reporting import write_csv

ADAPTERS = ("task1", "task2", "task3", "task4")


def minilm_architecture(seed: int = 0, num_labels: int = 4, layers: int = 6,
                        dropout: float = 0.1):
    """all-MiniLM-L6-v2's architecture with random weights, ``num_labels`` labels, eval mode
    (``layers`` < 6: the same layers, fewer of them; ``dropout``: its hidden and attention
    dropout, 0.1 as the checkpoint's)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=layers,
                        num_attention_heads=12, intermediate_size=1536,
                        max_position_embeddings=512, num_labels=num_labels,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config).eval()


def _perturb(model, scale: float = 0.05) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("hamming", "lora_")):
                p.add_(scale * torch.randn(p.shape, generator=g))


def qiadapters_model():
    from qiadapters import HammingConfig, get_adapter_model

    # the paper's layout (3 blocks of 128 on query/value), which the committed results used
    am = get_adapter_model(minilm_architecture(), HammingConfig.paper(target_modules=TARGETS),
                           adapter_name=ADAPTERS[0])
    for name in ADAPTERS[1:]:
        am.add_adapter(name, HammingConfig.paper(target_modules=TARGETS))
    _perturb(am)
    return am.eval(), am.set_adapter


def peft_model():
    from peft import get_peft_model

    from .common.registry import lora_config

    config = lora_config(8, target_modules=TARGETS, modules_to_save=None)
    pm = get_peft_model(minilm_architecture(), config, adapter_name=ADAPTERS[0])
    for name in ADAPTERS[1:]:
        pm.add_adapter(name, config)
    _perturb(pm)
    return pm.eval(), pm.base_model.set_adapter


def _batch(rows: int, length: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (rows, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@torch.no_grad()
def measure(model, set_adapter, rows: int, length: int, repeats: int) -> dict:
    """Median seconds of the mixed call and of the four separate calls, interleaved."""
    batch = _batch(len(ADAPTERS) * rows, length)
    names = [a for a in ADAPTERS for _ in range(rows)]
    parts = [{k: v[i * rows:(i + 1) * rows] for k, v in batch.items()}
             for i in range(len(ADAPTERS))]

    def mixed():
        return model(**batch, adapter_names=names).logits

    def separate():
        out = []
        for name, part in zip(ADAPTERS, parts):
            set_adapter(name)
            out.append(model(**part).logits)
        return torch.cat(out)

    torch.testing.assert_close(mixed(), separate(), atol=1e-5, rtol=1e-5)  # same answers
    times = {"mixed": [], "separate": []}
    for _ in range(repeats):
        for key, fn in (("mixed", mixed), ("separate", separate)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"rows_per_adapter": rows, "batch": len(names), "tokens": length,
            "mixed_s": med["mixed"], "separate_s": med["separate"],
            "mixed_rows_per_s": len(names) / med["mixed"],
            "separate_rows_per_s": len(names) / med["separate"],
            "speedup": med["separate"] / med["mixed"], "repeats": repeats}


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    libraries = list(dict.fromkeys(r["library"] for r in rows))
    sizes = list(dict.fromkeys(r["rows_per_adapter"] for r in rows))
    width = 0.8 / (2 * len(libraries))
    for j, lib in enumerate(libraries):
        for k, key in enumerate(("mixed", "separate")):
            values = [next(r[f"{key}_rows_per_s"] for r in rows
                           if r["library"] == lib and r["rows_per_adapter"] == s) for s in sizes]
            xs = [i + (2 * j + k - len(libraries) + 0.5) * width for i in range(len(sizes))]
            ax.bar(xs, values, width, label=f"{lib}: {'one mixed batch' if key == 'mixed' else '4 separate batches'}")
    ax.set_xticks(range(len(sizes)), [f"{s} rows/adapter" for s in sizes])
    ax.set_ylabel("rows per second (higher is better)")
    ax.set_title("4 adapters, MiniLM architecture, CPU (shared machine)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = cli.quick_parser(__doc__, "1 and 2 rows, 3 repeats")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats, args.tokens = [1, 2], 3, 16
    out = cli.start(args)
    results = []
    for library, build in (("qiadapters Hamming", qiadapters_model), ("peft LoRA r=8", peft_model)):
        model, set_adapter = build()
        for rows in args.rows:
            r = {"library": library, **measure(model, set_adapter, rows, args.tokens,
                                                args.repeats)}
            print(f"{library:20s} {rows:3d} rows/adapter: mixed {r['mixed_s'] * 1e3:8.1f} ms, "
                  f"separate {r['separate_s'] * 1e3:8.1f} ms, speedup {r['speedup']:.2f}x")
            results.append(r)
    meta = {"threads": args.threads or torch.get_num_threads(), "tokens": args.tokens,
            "adapters": len(ADAPTERS), "shared_machine": True,
            "note": "medians of interleaved timings on a CPU shared with other processes; "
                    "read the ratios"}
    write_csv(out / "mixed_batch.csv", results)
    (out / "mixed_batch.json").write_text(json.dumps({"meta": meta, "rows": results}, indent=1))
    plot(results, out / "mixed_batch.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
