"""The ``qiadapters`` command line (also ``python -m qiadapters``).

==========  ===================================================================================
command     what it does
==========  ===================================================================================
verify      every circuit layout x gate against PennyLane's state-vector simulation (a table)
plan        every Hamming configuration that fits a parameter budget for one layer width
info        what a saved adapter folder holds: config, format, per-module tensors
merge       fold a saved adapter into a Hugging Face model folder; writes a plain model folder
bench       run one of the benchmarks (from a source checkout, where ``benchmarks/`` lives)
demo        the demo: MiniLM on WordNet glosses, Hamming vs peft LoRA (source checkout)
==========  ===================================================================================

Errors print one line (``qiadapters <command>: error: ...``), never a traceback.  Exit status 2:
the call is refused -- an argument argparse or the library rejects (a budget nothing fits,
``--max-n 1``), or a file or folder it names (missing, a file where a folder is expected, not an adapter folder); exit status 1:
the command ran and failed -- a folder it was given holds bad or hostile content (an invalid
config, bad tensors, sizes over the bounds: :mod:`.content`), ``verify`` found a deviation,
an optional package is missing (:class:`CommandError` and ``ImportError``).  Text from files
is printed escaped.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

from . import info, merge, plan, run
from .content import printable

#: command -> (module with ``add_arguments(parser)`` and ``main(args) -> int``, one-line help)
COMMANDS = {
    "verify": (run.Verify, "circuits vs PennyLane, every layout and gate kind"),
    "plan": (plan, "Hamming configurations that fit a parameter budget for a layer width"),
    "info": (info, "what a saved adapter folder holds"),
    "merge": (merge, "write a Hugging Face model folder with a saved adapter merged in"),
    "bench": (run.Bench, "run a benchmark module (source checkout)"),
    "demo": (run.Demo, "run the demo (source checkout)"),
}


class CommandError(Exception):
    """A failure of a command that is not a refused argument: one line, exit status 1."""


#: Exit statuses: a refused call (bad argument, bad path), a command that failed.
USAGE, FAILURE = 2, 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="qiadapters", description="qiadapters: quantum-inspired and "
                  "physics-prior adapters.  `qiadapters COMMAND --help` for each command.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=(module.__doc__ or help_).strip())
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(p)
        p.set_defaults(_main=module.main, _prog=p.prog)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    main_: Callable[[argparse.Namespace], int] = args._main
    try:
        return int(main_(args) or 0)
    except (ValueError, TypeError, OSError) as e:  # the arguments, or the paths they name
        return _error(args._prog, e, USAGE)
    except (CommandError, ImportError) as e:
        return _error(args._prog, e, FAILURE)


def _error(prog: str, error: Exception, status: int) -> int:
    """Print ``error`` on one line (a message of several lines is joined) and return ``status``."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"{prog}: error: {printable(message)}", file=sys.stderr)
    return status
