"""FSDP2 (``fully_shard``) on CPU with gloo: an adapted model trains sharded and
``save_pretrained`` writes the adapter alone, gathered whole, once; an unsharded adapter is
still saved by whichever rank calls it (rank 0 alone, as DDP code does, must not hang).
Every rank checks the folder before rank 0 writes into it (the test widens the window in
which a late rank could otherwise see rank 0's half-written save and refuse it).

The test launches this file under ``torchrun --nproc_per_node=2``; each rank shards every
adapter layer and the model, trains a few AdamW steps on the same batch (so the averaged
gradient is the single-process one) and saves.  The saved adapter must hold only adapter
tensors, load with ``AdapterModel.from_pretrained`` and equal a single-process run.
"""
import os
import sys

import pytest
import torch

from qiadapters import AdapterModel, HammingConfig, get_adapter_model
from qiadapters.testing import tiny_mlp

pytest.importorskip("torch.distributed.fsdp")
CONFIG = HammingConfig(target_modules=["fc1", "fc2"], orders=(1, 2), blocks=2)
STEPS = 3


def train(am, steps=STEPS):
    _, inputs = tiny_mlp(0)
    params = [p for p in am.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-2)
    for _ in range(steps):
        out = am(**inputs)
        out.square().mean().backward()
        opt.step()
        opt.zero_grad()


def adapted():
    model, _ = tiny_mlp(0)
    torch.manual_seed(1)
    return get_adapter_model(model, CONFIG)


def test_fully_shard_trains_and_saves_the_adapter_only(torchrun, tmp_path):
    torchrun(__file__, tmp_path, timeout=180)
    assert sorted(os.listdir(tmp_path)) == ["adapter_config.json", "adapter_model.safetensors",
                                            "rank0-only"]
    AdapterModel.from_pretrained(tiny_mlp(0)[0], tmp_path / "rank0-only")

    reference = adapted()
    train(reference)
    loaded = AdapterModel.from_pretrained(tiny_mlp(0)[0], tmp_path)
    for name in ("fc1", "fc2"):
        want = reference.base_model.get_submodule(name).hamming["default"].weight
        got = loaded.base_model.get_submodule(name).hamming["default"].weight
        assert not torch.equal(want, torch.zeros_like(want)), "the reference did not train"
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def _widen_the_save_window(rank: int) -> None:
    """Rank 0 waits 1 s between writing the tensors and the config; rank 1 checks the folder
    0.5 s late.  Were rank 0 to write before every rank has checked, rank 1 would find the new
    tensors without a config and refuse the folder as holding a different adapter."""
    import time

    from qiadapters.model import io

    if rank == 0:
        write = io._atomic_write
        io._atomic_write = lambda path, fn: (time.sleep(1.0 if path.endswith(io.CONFIG_NAME)
                                                        else 0.0), write(path, fn))[1]
    else:
        check = io.check_overwrite
        io.check_overwrite = lambda *a, **k: (time.sleep(0.5), check(*a, **k))[1]


def _rank_main(out_dir: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo")
    # the mesh names the CPU: by default fully_shard puts it on CUDA wherever a GPU is
    # visible, and rank 1 of a one-GPU machine has none
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    am = adapted()
    for _, layer in am.adapter_layers():
        fully_shard(layer, mesh=mesh)
    fully_shard(am.base_model, mesh=mesh)
    train(am)
    _widen_the_save_window(dist.get_rank())
    am.save_pretrained(out_dir)  # every rank calls it; rank 0 writes
    # an unsharded adapter inside a process group (the DDP pattern): rank 0 alone saves,
    # and nothing waits for the other ranks
    if dist.get_rank() == 0:
        adapted().save_pretrained(os.path.join(out_dir, "rank0-only"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    from testing_utils import exit_worker  # this folder is the script's: on sys.path

    _rank_main(sys.argv[1])
    exit_worker()  # skips the interpreter's teardown (testing_utils.exit_worker)
