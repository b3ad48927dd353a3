"""Hostile adapter folders, loaded in a child process with a memory cap.

``python tests/hostile.py WORKDIR CASE...`` saves a small real adapter for each case into
``WORKDIR``, edits its ``adapter_config.json`` as a hostile uploader would (a few bytes),
caps the process's address space at its current size plus :data:`CAP` and loads each case
with ``AdapterModel.from_pretrained`` (``save_over_dev_zero``: saves into a folder whose
``adapter_config.json`` links to ``/dev/zero``), printing one JSON line per case: the seconds the load
took, the resident memory it added (``rss_added_mb``: after minus before, the memory a
refused load leaves behind) and the error it raised.  The parent gives the whole run a
timeout (``tests/test_untrusted.py``; the before/after table of ``docs/security.md`` comes
from this script run on the old and the new code).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

CAP = 1 << 30
HIDDEN = 384


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hamming(**fields):
    def edit(data):
        data.update(fields)
    return "hamming", edit


def _physics_rank(data):
    data["rank"] = 900_000


def _many_experts(data):
    data["experts"] = data["experts"] * 2500


#: case -> (family of the saved adapter, edit of its config dict)
CASES = {
    "orders_10_one_block": _hamming(orders=[10], blocks=1),
    "orders_9": _hamming(orders=[9]),
    "circuit_order_21": _hamming(parametrization="circuit", orders=[21], blocks=1),
    "pattern": _hamming(target_modules="(.|.)*!"),
    "physics_rank": ("physics", _physics_rank),
    "mixture_5000_experts": ("mixture", _many_experts),
    "save_over_dev_zero": ("save", None),  # save_pretrained where the config links /dev/zero
}


def _model():
    from qiadapters.tiny_models import tiny_bert
    return tiny_bert(hidden=HIDDEN, layers=1)[0]


def _config(family: str):
    from qiadapters import HammingConfig, MixtureConfig
    if family == "hamming":
        return HammingConfig(target_modules=["query"])
    if family == "physics":
        from physics import PhysicsConfig
        return PhysicsConfig(target_modules=["query"], rank=4)
    return MixtureConfig(target_modules=["query"], experts=[HammingConfig(orders=(1,))] * 2)


def prepare(workdir: str, case: str) -> str:
    """A folder of ``case``: a real adapter saved, then its config edited (written as format
    4, which has no per-layer record to disagree with the edit)."""
    from qiadapters import AdapterModel
    family, edit = CASES[case]
    folder = os.path.join(workdir, case)
    if family == "save":  # an adapter saved there, then its config replaced by the link
        AdapterModel(_model(), _config("hamming")).save_pretrained(folder)
        os.remove(os.path.join(folder, "adapter_config.json"))
        os.symlink("/dev/zero", os.path.join(folder, "adapter_config.json"))
        return folder
    AdapterModel(_model(), _config(family)).save_pretrained(folder)
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        data = json.load(f)
    data.pop("layers", None)
    data["format_version"] = 4
    edit(data)
    with open(path, "w") as f:
        json.dump(data, f)
    return folder


def main(workdir: str, cases: list[str]) -> None:
    import torch  # noqa: F401  (imported before the cap: its address space is not the load's)
    from qiadapters import AdapterModel
    folders = {case: prepare(workdir, case) for case in cases}
    model = _model()
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + CAP, vm + CAP))
    for case in cases:
        before, start = rss_mb(), time.perf_counter()
        try:
            if CASES[case][0] == "save":
                AdapterModel(_model(), _config("hamming")).save_pretrained(folders[case])
            else:
                AdapterModel.from_pretrained(model, folders[case])
            error = None
        except (ValueError, TypeError, MemoryError, RuntimeError) as e:
            error = f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - start
        print(json.dumps({"case": case, "seconds": round(seconds, 3),
                          "rss_added_mb": round(rss_mb() - before, 1),
                          "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                          "error": error}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or list(CASES))
