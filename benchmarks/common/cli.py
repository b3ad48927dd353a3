"""The argparse pieces every benchmark command shares.

A command is ``python -m benchmarks.<name>`` (or ``benchmarks.<name>.run``) whose ``main(argv)``
parses its own arguments; what most of them take alike is here: ``--threads`` (torch intra-op
threads), ``--quick`` (a smoke run written to ``results/quick/``), the output folder that
follows from it, and ``--deadline HH:MM``.
"""
from __future__ import annotations

import argparse
import datetime
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


def deadline(text: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """The next ``HH:MM`` local time after ``now`` (default: the current time) as
    ``time.time()`` seconds: today's when it is still ahead, else tomorrow's, so that a
    night run started at 22:30 with ``--deadline 00:50`` stops at 00:50 and does not start
    past its deadline.  None stays None; anything but ``HH:MM`` (00-23, 00-59) is a
    ``ValueError`` that names the value."""
    if text is None:
        return None
    parts = text.split(":")
    if (len(parts) != 2 or not all(p.isdigit() for p in parts)
            or not (0 <= int(parts[0]) < 24 and 0 <= int(parts[1]) < 60)):
        raise ValueError(f"deadline: {text!r} is not a time HH:MM (00:00 to 23:59)")
    now = time.time() if now is None else now
    day = datetime.datetime.fromtimestamp(now)
    at = day.replace(hour=int(parts[0]), minute=int(parts[1]), second=0, microsecond=0)
    if at.timestamp() <= now:
        at += datetime.timedelta(days=1)
    return at.timestamp()
