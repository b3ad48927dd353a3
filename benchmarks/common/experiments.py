"""A benchmark's experiments: the training parameters of each of its rows, as JSON inputs
(in the spirit of peft's ``method_comparison/``, one folder per experiment)::

    benchmarks/<benchmark>/experiments/
        default_training_params.json            what every row trains with
        <family>/<name>/training_params.json    what row <name> changes ({}: nothing)
        <family>/<name>/adapter_config.json     the row's config, as its class writes it
                                                (derived: :mod:`benchmarks.common.adapter_configs`)

``<name>`` is a registry method (:mod:`benchmarks.common.registry`: what the method *is*)
and ``<family>`` its registry family.  A row's parameters are the defaults with the keys of
its own file replacing theirs (a list such as ``lrs`` is replaced, not merged):

* ``lrs``: the learning-rate grid the sweep starts from (:mod:`benchmarks.common.sweep`);
* ``adapter_lr_scale``: the adapter trains at ``lr * adapter_lr_scale``, the head at ``lr``;
* ``scale_lr_scale``: a Hamming adapter's learned scales train at ``lr * scale_lr_scale``
  (absent: at the adapter's rate);
* ``note``: why the values are what they are (free text, read by people);
* defaults only: ``steps``, ``batch_size``, ``warmup_frac``, ``seeds`` (the first is the
  sweep seed): one protocol for every row of a benchmark, so a row cannot change them.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import registry

DEFAULTS = "default_training_params.json"
PARAMS = "training_params.json"
#: The keys a row's training-parameters file may hold ...
ROW_KEYS = {"lrs", "adapter_lr_scale", "scale_lr_scale", "note"}
#: ... and the defaults' file.
KEYS = ROW_KEYS | {"steps", "batch_size", "warmup_frac", "seeds"}


def _read(path: Path, keys: set = KEYS) -> dict:
    data = json.loads(Path(path).read_text())
    unknown = set(data) - keys
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: {sorted(keys)}")
    return data


def defaults(folder: Path) -> dict:
    """``folder/default_training_params.json`` (its ``note`` left out)."""
    data = _read(Path(folder) / DEFAULTS)
    data.pop("note", None)
    return data


def experiment_dir(folder: Path, name: str) -> Path:
    """Where row ``name`` keeps its inputs: ``folder/<family>/<name>``."""
    return Path(folder) / registry.get(name).family / name


def training_params(folder: Path, name: str) -> dict:
    """Row ``name``'s training parameters: the defaults updated by its own file (which
    must exist: a row is a folder), ``note`` left out."""
    path = experiment_dir(folder, name) / PARAMS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: every row of {folder} is a folder "
                                f"<family>/<name> with a {PARAMS} (``{{}}`` for the defaults)")
    data = {**defaults(folder), **_read(path, ROW_KEYS)}
    data.pop("note", None)
    return data


def names(folder: Path) -> list[str]:
    """Every experiment of ``folder`` (the names of its ``<family>/<name>`` folders)."""
    return sorted(p.parent.name for p in Path(folder).glob(f"*/*/{PARAMS}"))


def table(folder: Path, rows) -> dict:
    """``name -> Method`` for the registry names ``rows``, in order: each row's lr grid and
    adapter-lr scale from its ``training_params.json`` under ``folder``, its experts those
    of its registry experts that are rows too."""
    from .methods import method

    rows = tuple(rows)
    out = {}
    for name in rows:
        params = training_params(folder, name)
        out[name] = method(name, params["lrs"], params.get("adapter_lr_scale", 1.0), rows,
                           params.get("scale_lr_scale"))
    return out
