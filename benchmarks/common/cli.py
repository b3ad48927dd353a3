"""The argparse pieces every benchmark command shares.

A command is ``python -m benchmarks.<name>`` (or ``benchmarks.<name>.run``) whose ``main(argv)``
parses its own arguments; what most of them take alike is here: ``--threads`` (torch intra-op
threads), ``--quick`` (a smoke run written to ``results/quick/``), the output folder that
follows from it, and ``--deadline HH:MM``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import torch

from .constants import results_dir


def parser(doc: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """A command's parser.  With ``prog`` its description is the whole module docstring
    ``doc``, kept as written (the commands' usage lines included); without, the docstring's
    first paragraph."""
    if prog is None:
        return argparse.ArgumentParser(description=doc.split("\n\n")[0])
    return argparse.ArgumentParser(prog=prog, description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def quick_parser(doc: str, quick_help: str, threads: Optional[int] = None
                 ) -> argparse.ArgumentParser:
    """:func:`parser` with ``--threads`` (default ``threads``; None: torch's) and ``--quick``
    (``quick_help`` says what it shrinks)."""
    p = parser(doc)
    p.add_argument("--threads", type=int, default=threads)
    p.add_argument("--quick", action="store_true", help=quick_help)
    return p


def start(args: argparse.Namespace) -> Path:
    """Apply ``args.threads`` (when set) and return the output folder of ``args.quick``,
    created (:func:`~benchmarks.common.constants.results_dir`)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = results_dir(quick=args.quick)
    out.mkdir(parents=True, exist_ok=True)
    return out


def deadline(text: Optional[str]) -> Optional[float]:
    """``HH:MM`` local time today as ``time.time()`` seconds (None stays None)."""
    if text is None:
        return None
    hh, mm = (int(x) for x in text.split(":"))
    now = time.localtime()
    return time.mktime(now[:3] + (hh, mm, 0) + now[6:])
