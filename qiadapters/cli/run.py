"""Commands that run existing entry points: ``verify``, ``bench``, ``demo``."""
from __future__ import annotations

import argparse
import importlib
import runpy
import sys


class Verify:
    """Every circuit layout x gate kind against PennyLane on random angles: block size,
    parameters, depth, the largest deviation from ``qml.matrix`` (float64), and whether the
    weight-k block is the compound of the weight-1 block.  Exit 1 if any deviation > 1e-10."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--max-n", type=int, default=8, help="largest qubit count (default 8)")
        p.add_argument("--seed", type=int, default=0, help="seed of the random angles")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        if args.max_n < 2:
            raise ValueError(f"--max-n={args.max_n} is not valid; valid: an integer >= 2")
        from ..circuits import verify

        return verify.main(["--max-n", str(args.max_n), "--seed", str(args.seed)])


def _run_module(name: str, argv: list[str]) -> int:
    """``python -m name argv...`` in this process (the benchmarks are not installed: they
    live in the source checkout, importable from its root)."""
    try:
        importlib.import_module(name.rpartition(".")[0] or name)
    except ImportError:
        raise ImportError(f"{name} is not importable: the benchmarks and the demo live in the "
                          f"qiadapters source checkout; run this command from its root") from None
    saved = sys.argv
    sys.argv = [name, *argv]
    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    return 0


#: ``qiadapters bench NAME``: the benchmark modules.
BENCHMARKS = ("circuits", "speed", "tradeoff", "physics")


class Bench:
    """Run one benchmark module, e.g. ``qiadapters bench speed --quick``; the arguments after
    the name go to the module (``qiadapters bench speed --help`` lists them)."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", choices=BENCHMARKS, help="which benchmark")
        p.add_argument("args", nargs=argparse.REMAINDER, help="its own arguments")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        return _run_module(f"benchmarks.{args.name}", args.args)


class Demo:
    """The demo (``make demo``): fine-tune MiniLM on WordNet glosses with a Hamming adapter
    and with peft LoRA; the arguments go to ``benchmarks.demo`` (``--steps 40`` is a smoke
    run)."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of benchmarks.demo")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        return _run_module("benchmarks.demo", args.args)
