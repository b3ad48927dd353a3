"""Fold a saved adapter into a Hugging Face model folder and write a plain model folder that
loads with transformers alone (no qiadapters needed to use it).

    qiadapters merge --model path/to/model --adapter out/ --out merged/

The model class is the config's first entry in ``architectures``; every file of the model
folder that is not weights or config (tokenizer files, ...) is copied along.  The merge is
checked for non-finite values first (``safe_merge``); a family that cannot be merged (a
physics prior mixes tokens, not weights) is refused with the reason.
"""
from __future__ import annotations

import argparse
import os
import shutil

from ..model import AdapterModel

#: Files of a model folder that the merged model's own save replaces.
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="Hugging Face model folder (base weights)")
    p.add_argument("--adapter", required=True, help="adapter folder written by save_pretrained")
    p.add_argument("--out", required=True, help="folder for the merged model (created)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")


def load_model(directory: str):
    """The model saved in ``directory``, built from its config's ``architectures[0]``."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(directory)
    names = getattr(config, "architectures", None) or []
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        raise ValueError(f"--model {directory!r}: its config names no transformers class in "
                         f"'architectures' ({names!r}); save the model with save_pretrained")
    return cls.from_pretrained(directory)


def main(args: argparse.Namespace) -> int:
    for flag, path in (("--model", args.model), ("--adapter", args.adapter)):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{flag} {path!r} is not a folder")
    if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
        raise ValueError(f"--out {args.out!r} is not empty; choose another folder or pass "
                         f"--overwrite")
    model = load_model(args.model)
    merged = AdapterModel.from_pretrained(model, args.adapter).merge_and_unload(safe_merge=True)
    merged.save_pretrained(args.out)
    for name in os.listdir(args.model):
        src, dst = os.path.join(args.model, name), os.path.join(args.out, name)
        if os.path.isfile(src) and not name.endswith(_WEIGHTS) and not os.path.exists(dst):
            shutil.copy2(src, dst)
    print(f"merged {args.adapter} into {type(merged).__name__} from {args.model}; wrote {args.out}")
    return 0
