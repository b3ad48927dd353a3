"""Fold a saved adapter into a Hugging Face model folder and write a plain model folder that
loads with transformers alone (no qiadapters needed to use it).

    qiadapters merge --model path/to/model --adapter out/ --out merged/

The model class is the config's first entry in ``architectures``; every file of the model
folder that is not weights or config (tokenizer files, ...) is copied along.  The merge is
checked for non-finite values first (``safe_merge``); a family that cannot be merged (a
physics prior mixes tokens, not weights) is refused with the reason.

``--out`` never overlaps the inputs: a folder that is (after symlinks and ``..``), is inside
or holds ``--model`` or ``--adapter`` is refused before anything is read.  The merged model
is written into a new folder beside ``--out`` and renamed into place once complete; an
existing ``--out`` (empty, or any with ``--overwrite``) is replaced only then, so a merge that
fails half-way leaves it as it was.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
from typing import Callable

from ..model import AdapterModel
from .content import folder_content

#: Files of a model folder that the merged model's own save replaces.
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="Hugging Face model folder (base weights)")
    p.add_argument("--adapter", required=True, help="adapter folder written by save_pretrained")
    p.add_argument("--out", required=True, help="folder for the merged model (created; apart "
                   "from --model and --adapter)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out (once the merged model is complete)")


def load_model(directory: str):
    """The model saved in ``directory``, built from its config's ``architectures[0]``."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(directory)
    names = getattr(config, "architectures", None) or []
    cls = getattr(transformers, names[0], None) if names and isinstance(names[0], str) else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise ValueError(f"--model {directory!r}: its config names no transformers class in "
                         f"'architectures' ({names!r}); save the model with save_pretrained")
    return cls.from_pretrained(directory)


def check_out(args: argparse.Namespace) -> str:
    """The real path ``--out`` names, after refusing (ValueError, naming both paths) one
    that overlaps ``--model`` or ``--adapter`` (the same folder after symlinks, ``..`` and
    trailing slashes; inside one; holding one), one that is a file (or lies under a file),
    and a non-empty folder without ``--overwrite``."""
    out = os.path.realpath(args.out)
    for flag, path in (("--model", args.model), ("--adapter", args.adapter)):
        real = os.path.realpath(path)
        if out == real:
            how = "is the same folder as"
        elif os.path.commonpath([out, real]) == real:
            how = "is inside"
        elif os.path.commonpath([out, real]) == out:
            how = "holds"
        else:
            continue
        raise ValueError(f"--out {args.out!r} would write over {flag} {path!r}: it {how} "
                         f"{real!r}; choose an --out folder apart from --model and --adapter")
    above = out
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        where = "is a file" if above == out else f"lies under the file {above!r}"
        raise ValueError(f"--out {args.out!r} {where}; give a folder for the merged model "
                         f"(created if missing, replaced with --overwrite)")
    if above == out and os.listdir(out) and not args.overwrite:
        raise ValueError(f"--out {args.out!r} is not empty; choose another folder or pass "
                         f"--overwrite")
    return out


def _beside(out: str, what: str) -> str:
    """A new name in ``out``'s parent folder (hidden, unique)."""
    return os.path.join(os.path.dirname(out),
                        f".{os.path.basename(out)}.{what}-{os.getpid()}-{secrets.token_hex(4)}")


def write_into_place(out: str, write: Callable[[str], None]) -> None:
    """``write(folder)`` into a new folder beside ``out``, then rename it to ``out``; an
    existing ``out`` is moved aside first and deleted last (put back if the rename fails).
    On any failure the new folder, and any parent folder of ``out`` made for it, is removed
    and ``out`` is as it was."""
    made, parent = [], os.path.dirname(out)
    while parent and not os.path.lexists(parent):  # the parents this call creates, deepest first
        made.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    new = _beside(out, "merging")
    try:
        os.mkdir(new)
    except BaseException:
        _remove_empty(made)
        raise
    try:
        write(new)
        old = None
        if os.path.lexists(out):
            old = _beside(out, "replaced")
            os.rename(out, old)
        try:
            os.rename(new, out)
        except BaseException:
            if old is not None:
                os.rename(old, out)
            raise
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        _remove_empty(made)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_empty(folders: list[str]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def main(args: argparse.Namespace) -> int:
    for flag, path in (("--model", args.model), ("--adapter", args.adapter)):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{flag} {path!r} is not a folder")
    out = check_out(args)
    with folder_content():  # the folders' content is untrusted: bad content exits 1
        model = load_model(args.model)
        adapted = AdapterModel.from_pretrained(model, args.adapter)
    merged = adapted.merge_and_unload(safe_merge=True)

    def write(folder: str) -> None:
        merged.save_pretrained(folder)
        for name in os.listdir(args.model):
            src, dst = os.path.join(args.model, name), os.path.join(folder, name)
            if os.path.isfile(src) and not name.endswith(_WEIGHTS) and not os.path.exists(dst):
                shutil.copy2(src, dst)

    write_into_place(out, write)
    print(f"merged {args.adapter} into {type(merged).__name__} from {args.model}; wrote {args.out}")
    return 0
