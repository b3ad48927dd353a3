"""Bad inputs of ``qiadapters merge`` in ``docs/errors.md`` (``error_cases.py`` imports this
file, so these cases register in the same ``CASES`` table)."""
from __future__ import annotations

import os

from error_cases import _cli, case


def _inputs(tmp):
    """A model folder and an adapter folder (``--out`` is checked before either is read)."""
    for name in ("model", "adapter"):
        os.makedirs(os.path.join(tmp, name))
        with open(os.path.join(tmp, name, "config.json"), "w") as f:
            f.write("{}\n")
    return os.path.join(tmp, "model"), os.path.join(tmp, "adapter")


@case
def case_cli_merge_out_is_model(tmp):
    model, adapter = _inputs(tmp)
    return (lambda: _cli(["merge", "--model", model, "--adapter", adapter,
                          "--out", model + os.sep, "--overwrite"])), None


@case
def case_cli_merge_out_is_file(tmp):
    model, adapter = _inputs(tmp)
    out = os.path.join(tmp, "merged.bin")
    with open(out, "wb") as f:
        f.write(b"keep")
    return (lambda: _cli(["merge", "--model", model, "--adapter", adapter, "--out", out])), None
