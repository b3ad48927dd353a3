"""Suite-wide settings.  CI runs `pytest -n 2` on 2 cores: one intra-op thread per worker,
otherwise two multi-threaded workers oversubscribe the cores and tiny ops slow down 50x."""
import os

import pytest
import torch

torch.set_num_threads(1)
# Without a GPU, Triton kernels run in Triton's interpreter (tests/test_triton_kernels.py),
# which must be on before anything imports triton.language (torch's compiler, transformers).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _adapter_families_restored():
    """A family a test registers (a docs page's example, a test's own family) is forgotten
    after it: no later test on the same worker sees it among the valid adapter types."""
    import physics  # noqa: F401  (the library's own families are registered for good)
    from qiadapters.adapters import registry

    before = dict(registry.CONFIGS), dict(registry.LAYERS)
    yield
    for table, saved in zip((registry.CONFIGS, registry.LAYERS), before):
        table.clear()
        table.update(saved)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def torchrun():
    """``torchrun(script, *args, timeout=..., launcher="torchrun")``: run ``script`` on two
    processes (gloo on 127.0.0.1, a free port, one thread per rank, the repository root
    importable) and assert that every rank exited cleanly.

    ``launcher="torchrun"``: ``torchrun --nproc_per_node=2``.  ``launcher="accelerate"``:
    ``accelerate launch --multi_gpu --num_processes=2``, which starts the ranks through the
    same ``torch.distributed.run`` and, with no GPU, runs them on the CPU with gloo
    (``--cpu`` would start one process: accelerate spreads CPU ranks only through
    ``mpirun``).  The ranks see no GPU (``CUDA_VISIBLE_DEVICES=""``): these are CPU/gloo runs,
    and on a one-GPU machine a second rank would otherwise be sent to a device that does not
    exist."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])

    launchers = {
        "torchrun": lambda port: ["torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                                  "--master_addr=127.0.0.1", f"--master_port={port}"],
        "accelerate": lambda port: ["accelerate.commands.launch", "--multi_gpu",
                                    "--num_processes=2", "--num_machines=1",
                                    "--main_process_ip=127.0.0.1", f"--main_process_port={port}",
                                    "--mixed_precision=no", "--dynamo_backend=no",
                                    "--num_cpu_threads_per_process=1"],
    }

    def run(script, *args, timeout=180, launcher="torchrun"):
        if launcher not in launchers:
            raise ValueError(f"launcher={launcher!r} is not valid; valid: {list(launchers)}")
        env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=os.pathsep.join(
            [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        cmd = [sys.executable, "-m", *launchers[launcher](_free_port()),
               str(script), *map(str, args)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, \
            f"{launcher} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    return run
