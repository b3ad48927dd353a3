"""Suite-wide settings.  CI runs `pytest -n 2` on 2 cores: one intra-op thread per worker,
otherwise two multi-threaded workers oversubscribe the cores and tiny ops slow down 50x."""
import pytest
import torch

torch.set_num_threads(1)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def torchrun():
    """``torchrun(script, *args, timeout=...)``: run ``script`` under ``torchrun
    --nproc_per_node=2`` (gloo on 127.0.0.1, a free port, one thread per rank, the repository
    root importable) and assert that every rank exited cleanly."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])

    def run(script, *args, timeout=180):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
            [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
               "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(script), *map(str, args)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, \
            f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    return run
