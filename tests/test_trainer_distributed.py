"""``AdapterTrainer`` on two processes on the CPU (gloo), started by ``torchrun
--nproc_per_node=2`` and by ``accelerate launch --multi_gpu --num_processes=2`` (conftest).

Trainer wraps the adapted model in DistributedDataParallel itself; the test checks that
both ranks end with the same adapter weights, that the main process alone wrote an
adapter-only checkpoint, and that the checkpoint loads with ``AdapterModel.from_pretrained``
to the weights the ranks hold.
"""
import os
import sys

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

STEPS = 3


def _examples(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (n, 8), generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    return [{"input_ids": ids[i], "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": labels[i]} for i in range(n)]


def _adapted():
    from qiadapters import HammingConfig, get_adapter_model
    from qiadapters.testing import tiny_bert

    torch.manual_seed(5)
    return get_adapter_model(tiny_bert()[0], HammingConfig(target_modules=["query", "value"],
                                                           blocks=4))


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_train_one_adapter_and_save_it_once(torchrun, tmp_path, launcher):
    torchrun(__file__, tmp_path, timeout=300, launcher=launcher)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    initial = {n: p.detach() for n, p in _adapted().named_parameters() if p.requires_grad}
    assert ranks[0]["weights"].keys() == initial.keys()
    for name, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][name]), name  # DDP kept them equal
    assert any(not torch.equal(v, initial[n]) for n, v in ranks[0]["weights"].items())

    from qiadapters import AdapterModel
    from qiadapters.testing import tiny_bert

    checkpoint = tmp_path / "out" / f"checkpoint-{STEPS}"
    files = set(os.listdir(checkpoint))
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    assert not any(f.startswith(("model", "pytorch_model")) for f in files), files
    loaded = AdapterModel.from_pretrained(tiny_bert()[0], checkpoint, is_trainable=True)
    held = dict(loaded.named_parameters())
    for name, value in ranks[0]["weights"].items():
        assert torch.equal(held[name].detach(), value), name


def _rank_main(out_dir: str) -> None:
    from transformers import TrainingArguments

    from qiadapters.integrations.transformers import AdapterTrainer

    am = _adapted()
    args = TrainingArguments(output_dir=os.path.join(out_dir, "out"), max_steps=STEPS,
                             per_device_train_batch_size=2, learning_rate=5e-2,
                             save_steps=STEPS, use_cpu=True, report_to=[], seed=3,
                             ddp_backend="gloo")
    trainer = AdapterTrainer(model=am, args=args, train_dataset=_examples())
    trainer.train()
    rank = int(os.environ["RANK"])
    torch.save({"world_size": int(os.environ["WORLD_SIZE"]),
                "weights": {n: p.detach().clone() for n, p in am.named_parameters()
                            if p.requires_grad}},
               os.path.join(out_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    from testing_utils import exit_worker  # this folder is the script's: on sys.path

    _rank_main(sys.argv[1])
    exit_worker()  # skips the interpreter's teardown (testing_utils.exit_worker)
