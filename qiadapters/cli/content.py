"""What the commands read from folders they are given: untrusted content.

A folder that exists but whose content is bad or hostile (an invalid config, tensors that
are not floating point or not finite, sizes over :mod:`qiadapters.bounds`, a base model
config naming no model class) is a failed command, exit status 1 with one line
(:func:`folder_content`); a missing folder or one of the wrong kind stays a refused call
(exit 2).  Text from a file is printed through :func:`printable`, so no control character
(ESC, BEL) in a config reaches the terminal.
"""
from __future__ import annotations

import contextlib
from typing import Iterator


def printable(text: object) -> str:
    """``str(text)`` with every non-printable character written as its Python escape
    (``\\x1b``, ``\\n``); printable text, non-ASCII letters included, is unchanged."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


@contextlib.contextmanager
def folder_content() -> Iterator[None]:
    """Turn an error raised while reading or checking a folder's content (ValueError,
    TypeError; KeyError or AttributeError from a hostile base model config given to
    transformers; RecursionError, MemoryError) into a :class:`~qiadapters.cli.CommandError`
    (exit status 1, one line)."""
    from . import CommandError

    try:
        yield
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, MemoryError) as e:
        raise CommandError(str(e) or type(e).__name__) from None
