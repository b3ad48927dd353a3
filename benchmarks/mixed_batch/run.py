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

import torch

from ..common import cli
from ..common.reporting import write_csv
from .batches import ADAPTERS, measure, peft_model, qiadapters_model
from .figures import plot


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
