"""Each experiment's ``adapter_config.json``: the config object its row trains with, written
by the config class itself.

The registry (:mod:`benchmarks.common.registry`, ``benchmarks/configs/*.json``) is the one
source of what a method is; this module derives, for every row of a benchmark::

    benchmarks/<benchmark>/experiments/<family>/<name>/adapter_config.json

from the object :func:`config_of` builds from the registry entry, the object the run's
``registry.build`` trains with (``modules_to_save`` the head included):

* peft's families (``LoraConfig``, ``OFTConfig``, ...): the dict of ``config.to_dict()``
  as peft's ``save_pretrained`` writes it (``indent=2``, keys sorted, sets as lists), the
  sets' items sorted (peft writes them in hash order, which differs between processes);
* qiadapters' / physics' families (``HammingConfig``, ``PhysicsConfig``, ``MixtureConfig``):
  the file the class's own ``save`` writes (its format and library version included).

Rows that are not an adapter of a config class (``head``, ``full``; the vision bottleneck
baseline and the paper's dense construction, built by the benchmarks' own code) get no file:
their registry entry is all there is.  The files are derived and committed;
``tests/test_adapter_configs.py`` fails, naming :data:`COMMAND`, when one differs from what
the classes write now (a registry change, a new row, a new library version).  Loading a
file back (``PeftConfig.from_pretrained`` / ``AdapterConfig.load``) gives the config again.

    python -m benchmarks.common.adapter_configs           # (re)write every benchmark's files
    python -m benchmarks.common.adapter_configs --check   # list the files that differ
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from . import experiments, registry
from .constants import HEAD, REPO_ROOT

FILE = "adapter_config.json"
#: The command that rewrites the files (the Makefile's ``bench-experiments`` runs it).
COMMAND = "python -m benchmarks.common.adapter_configs"
#: benchmark -> its experiments folder.
BENCHMARKS = {name: REPO_ROOT / "benchmarks" / name / "experiments"
              for name in ("tradeoff", "vision")}
#: The registry's groups (:data:`~benchmarks.common.registry.GROUPS`) whose methods are
#: config objects of qiadapters or physics (peft's group is the other).
OUR_GROUPS = {"qiadapters", "physics", "mixture"}


def config_of(name: str):
    """The config object registry method ``name`` trains with, or None for a row that is
    not an adapter of a config class."""
    entry = registry.get(name)
    if entry.group == "peft":
        return registry.peft_config(entry)
    if entry.group in OUR_GROUPS:
        config = registry.adapter_config(entry)
        config.modules_to_save = [HEAD]  # as registry.build adapts the model
        return config
    return None


def text_of(config) -> str:
    """What ``config``'s class writes as ``adapter_config.json`` (peft's: sets sorted)."""
    if config.__class__.__module__.startswith("peft"):
        data = {key: sorted(value) if isinstance(value, set) else value
                for key, value in config.to_dict().items()}
        return json.dumps(data, indent=2, sort_keys=True)
    with tempfile.TemporaryDirectory() as folder:
        return Path(config.save(folder)).read_text()


def load(directory: Path, name: str):
    """The config class of method ``name`` reading ``directory/adapter_config.json``."""
    if registry.get(name).group == "peft":
        from peft import PeftConfig
        return PeftConfig.from_pretrained(str(directory))
    from qiadapters.adapters.config import AdapterConfig
    return AdapterConfig.load(directory)


def expected(folder: Path) -> dict[Path, str | None]:
    """Every row of the experiments ``folder``: its file's path -> the text the classes write
    now (None: the row has no file)."""
    out = {}
    for name in experiments.names(folder):
        config = config_of(name)
        out[experiments.experiment_dir(folder, name) / FILE] = (
            None if config is None else text_of(config))
    return out


def differing(folder: Path) -> list[Path]:
    """The files of ``folder`` that differ from :func:`expected` (missing, stale, or present
    where a row has none)."""
    return [path for path, text in expected(folder).items()
            if (path.read_text() if path.is_file() else None) != text]


def write(folder: Path) -> list[Path]:
    """Write (or remove) the files of ``folder`` that differ; the paths changed."""
    changed = differing(folder)
    want = expected(folder)
    for path in changed:
        if want[path] is None:
            path.unlink()
        else:
            path.write_text(want[path])
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="list the files that differ; exit 1 if any, write nothing")
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS),
                        choices=list(BENCHMARKS))
    args = parser.parse_args(argv)
    paths = [p for b in args.benchmarks
             for p in (differing if args.check else write)(BENCHMARKS[b])]
    for path in paths:
        print(("differs: " if args.check else "wrote: ") + str(path.relative_to(REPO_ROOT)))
    return 1 if args.check and paths else 0


if __name__ == "__main__":
    raise SystemExit(main())
