"""The training loop: sampling, schedule, auxiliary loss, and DDP equivalence.

The DDP test launches this file under ``torchrun --nproc_per_node=2`` (gloo, 127.0.0.1, a free
port); each rank trains a tiny random BERT with a Hamming adapter and saves its trainable
weights, which must agree across ranks and with a single-process run on the same global
batches.
"""
import math
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.common.training import (evaluate, global_batches, train,
                                 warmup_cosine)


STEPS, BATCH, LR, SEED = 6, 8, 2e-2, 0


def tiny_bert():
    """A random 2-layer BERT (hidden 32, 2 heads, vocab 100), dropout off, with a Hamming
    adapter on query/value (2 blocks of 4 qubits, orders 1 and 2) and a trainable head."""
    import qiadapters
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=16,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    torch.manual_seed(1234)
    model = BertForSequenceClassification(config)
    adapter = qiadapters.HammingConfig(target_modules=["query", "value"], orders=(1, 2),
                                       blocks=2, modules_to_save=["classifier"])
    return qiadapters.get_adapter_model(model, adapter)


def tiny_data(n=40, length=8, seed=7):
    gen = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 100, (n, length), generator=gen),
            "attention_mask": torch.ones(n, length, dtype=torch.long),
            "labels": torch.randint(0, 3, (n,), generator=gen)}


def trained_weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def run_tiny_training():
    model = tiny_bert()
    metrics = train(model, tiny_data(), tiny_data(n=16, seed=8), steps=STEPS, batch_size=BATCH,
                    lr=LR, warmup_frac=0.3, seed=SEED, progress=False,
                    aux_loss_fn=model.aux_loss)
    return model, metrics


@pytest.fixture(scope="module")
def single_run():
    """The single-process reference run, shared by the tests that compare against it."""
    model, metrics = run_tiny_training()
    return trained_weights(model), metrics


def test_ddp_two_ranks_match_single_process(torchrun, tmp_path, single_run):
    torchrun(__file__, tmp_path, timeout=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    expected, single = single_run
    initial = trained_weights(tiny_bert())
    assert set(ranks[0]["weights"]) == set(expected)
    for name, ref in expected.items():
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name]), name
        torch.testing.assert_close(ranks[0]["weights"][name], ref, atol=1e-6, rtol=0)
        assert not torch.equal(ref, initial[name]), f"{name} did not train"
    for r in range(2):
        assert ranks[r]["world_size"] == 2
        torch.testing.assert_close(torch.tensor(ranks[r]["losses"]),
                                   torch.tensor(single["losses"]), atol=1e-5, rtol=0)
        assert ranks[r]["val_accuracy"] == single["val_accuracy"]


def test_global_batches_are_seeded_epoch_permutations():
    batches = list(global_batches(10, 4, steps=5, seed=3))
    assert [len(b) for b in batches] == [4] * 5
    stream = torch.cat(batches)
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:20].tolist()) == list(range(10))
    again = torch.cat(list(global_batches(10, 4, steps=5, seed=3)))
    assert torch.equal(stream, again)
    assert not torch.equal(stream, torch.cat(list(global_batches(10, 4, steps=5, seed=4))))


def test_warmup_then_cosine():
    f = warmup_cosine(steps=100, warmup_frac=0.1)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert 0 < f(99) < 1e-3
    values = [f(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert warmup_cosine(steps=10, warmup_frac=0.0)(0) == 1.0


def test_train_updates_only_trainable_and_reports_metrics():
    model = tiny_bert()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    metrics = train(model, tiny_data(), tiny_data(n=16, seed=8), steps=STEPS, batch_size=BATCH,
                    lr=LR, warmup_frac=0.3, seed=SEED, progress=False, eval_every=3)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[name]), name
    assert metrics["world_size"] == 1 and metrics["steps"] == STEPS
    assert len(metrics["losses"]) == len(metrics["step_times"]) == STEPS
    assert metrics["trainable_params"] == sum(t.numel() for t in trained_weights(model).values())
    assert [s for s, _ in metrics["val_history"]] == [3, STEPS]
    assert metrics["val_history"][-1][1] == metrics["val_accuracy"]
    assert metrics["seconds_per_step"] > 0 and math.isfinite(metrics["train_loss"])
    assert model.training


def test_train_is_deterministic_for_a_seed(single_run):
    again, _ = run_tiny_training()
    for name, w in trained_weights(again).items():
        assert torch.equal(w, single_run[0][name])


def test_aux_loss_is_added_to_the_objective():
    # A dominant auxiliary pull of one trainable tensor towards 5 makes every Adam step move
    # each of its entries up by the step's learning rate; without it they go both ways.
    steps, lr = 10, 0.1

    def run(with_aux):
        model = tiny_bert()
        name, pulled = next((n, p) for n, p in model.named_parameters() if p.requires_grad)
        start = pulled.detach().clone()
        metrics = train(model, tiny_data(), steps=steps, batch_size=BATCH, lr=lr,
                        warmup_frac=0.0, seed=SEED, progress=False,
                        aux_loss_fn=(lambda: 1e3 * ((pulled - 5.0) ** 2).sum())
                        if with_aux else None)
        return pulled.detach() - start, metrics

    moved, metrics = run(with_aux=True)
    control, control_metrics = run(with_aux=False)
    schedule = warmup_cosine(steps, 0.0)
    total_lr = lr * sum(schedule(s) for s in range(steps))
    torch.testing.assert_close(moved, torch.full_like(moved, total_lr), rtol=0.02, atol=0)
    assert control.min() < 0.5 * total_lr
    aux_losses = metrics["aux_losses"]
    assert len(aux_losses) == steps and aux_losses[-1] < aux_losses[0]
    assert control_metrics["aux_losses"] == []


def test_evaluate_counts_argmax_hits():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x % 3, 3).float()

    data = {"x": torch.arange(10), "labels": torch.tensor([0, 1, 2, 0, 1, 2, 1, 1, 1, 1])}
    assert evaluate(Fixed(), data, batch_size=3) == pytest.approx(7 / 10)


def test_bad_inputs_are_refused():
    model = tiny_bert()
    with pytest.raises(KeyError, match="labels"):
        train(model, {"input_ids": torch.zeros(4, 8, dtype=torch.long)}, steps=1, progress=False)
    with pytest.raises(ValueError, match="no parameters"):
        train(model.requires_grad_(False), tiny_data(), steps=1, batch_size=4, progress=False)


def _ddp_worker(out_dir: Path) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    model, metrics = run_tiny_training()
    rank = dist.get_rank()
    torch.save({"weights": trained_weights(model), "losses": metrics["losses"],
                "world_size": metrics["world_size"], "val_accuracy": metrics["val_accuracy"]},
               out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    from testing_utils import exit_worker  # this folder is the script's: on sys.path

    _ddp_worker(Path(sys.argv[1]))
    exit_worker()  # skips the interpreter's teardown (testing_utils.exit_worker)
