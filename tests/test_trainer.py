"""Hugging Face ``Trainer`` with default arguments on an AdapterModel -- columns kept,
``eval_loss`` and metrics, full checkpoints that resume exactly (+ adapter files through
``AdapterCheckpointCallback``); ``AdapterTrainer``: adapter-only checkpoints, exact resumption.
References: the model's own loss on the eval set, an uninterrupted run, the saved files."""
import os

import pytest
import torch

pytest.importorskip("transformers")
from transformers import Trainer, TrainingArguments  # noqa: E402

from qiadapters import AdapterModel, HammingConfig, get_adapter_model  # noqa: E402
from qiadapters.integrations.transformers import (  # noqa: E402
    AdapterCheckpointCallback, AdapterTrainer, load_adapter_weights)
from qiadapters.testing import adapter_parameters, tiny_bert  # noqa: E402

CONFIG = dict(target_modules=["query", "value"], blocks=4, modules_to_save=["classifier"])


def rows(n, seed):
    """Examples with an extra column the model does not accept (dropped by the trainer)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (n, 8), generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    return [{"input_ids": ids[i], "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": labels[i], "example_id": i} for i in range(n)]


def args(tmp_path, **kw):
    kw = {"max_steps": 4, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 4,
          "learning_rate": 5e-2, "save_steps": 2, "use_cpu": True, "report_to": [],
          "seed": 3, **kw}
    return TrainingArguments(output_dir=str(tmp_path), **kw)


def model():
    return get_adapter_model(tiny_bert()[0], HammingConfig(**CONFIG))


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def test_plain_trainer_with_default_arguments_trains_and_evaluates(tmp_path):
    """No label_names, remove_unused_columns on: the AdapterModel's class shows BERT's
    forward, so the model's columns are kept, "example_id" is dropped and eval_loss found."""
    am, train = model(), rows(16, 0)
    trainer = Trainer(model=am, args=TrainingArguments(output_dir=str(tmp_path)),
                      train_dataset=train, eval_dataset=train, compute_metrics=accuracy)
    bare = Trainer(model=tiny_bert()[0], args=TrainingArguments(output_dir=str(tmp_path)))
    for read in ("label_names", "can_return_loss", "model_accepts_loss_kwargs"):
        assert getattr(trainer, read) == getattr(bare, read), read  # as for the wrapped model
    assert trainer.label_names == ["labels"]
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before["eval_loss"]
    am.eval()
    device = next(am.parameters()).device  # default arguments: Trainer moved it to a GPU if any
    labels = torch.stack([r["labels"] for r in train]).to(device)
    with torch.no_grad():  # independent reference: the model's own loss and predictions
        out = am(input_ids=torch.stack([r["input_ids"] for r in train]).to(device),
                 labels=labels)
    assert after["eval_loss"] == pytest.approx(float(out.loss), rel=1e-5)
    expected = float((out.logits.argmax(-1) == labels).float().mean())
    assert after["eval_accuracy"] == pytest.approx(expected)


def test_plain_trainer_checkpoints_are_full_resume_exactly_and_the_callback_adds_adapters(
        tmp_path):
    train = rows(10, 0)
    full = model()
    Trainer(model=full, args=args(tmp_path / "a", max_steps=6, save_steps=3),
            train_dataset=train, callbacks=[AdapterCheckpointCallback()]).train()
    checkpoint = tmp_path / "a" / "checkpoint-3"
    files = set(os.listdir(checkpoint))
    assert {"model.safetensors", "adapter_model.safetensors", "adapter_config.json"} <= files
    resumed = model()
    trainer = Trainer(model=resumed, args=args(tmp_path / "b", max_steps=6, save_steps=3),
                      train_dataset=train)
    trainer.train(resume_from_checkpoint=str(checkpoint))  # from model.safetensors
    a, b = adapter_parameters(full), adapter_parameters(resumed)
    assert trainer.state.global_step == 6 and a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    final = adapter_parameters(AdapterModel.from_pretrained(
        tiny_bert()[0], tmp_path / "a" / "checkpoint-6"))
    for name in a:
        assert torch.equal(final[name], a[name]), name
    with pytest.raises(TypeError, match="must be an AdapterModel, got BertForSequence"):
        AdapterCheckpointCallback().on_save(trainer.args, trainer.state, trainer.control,
                                            model=tiny_bert()[0])


def test_train_evaluate_and_adapter_only_checkpoints(tmp_path):
    am, train, held_out = model(), rows(8, 0), rows(6, 1)
    before = {n: p.detach().clone() for n, p in adapter_parameters(am).items()}
    trainer = AdapterTrainer(model=am, args=args(tmp_path), train_dataset=train,
                             eval_dataset=held_out, compute_metrics=accuracy)
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in adapter_parameters(am).items())
    metrics = trainer.evaluate()
    am.eval()
    with torch.no_grad():  # independent reference: the model's own loss and predictions
        batch = {k: torch.stack([r[k] for r in held_out]) for k in ("input_ids", "labels")}
        out = am(input_ids=batch["input_ids"], labels=batch["labels"])
    assert metrics["eval_loss"] == pytest.approx(float(out.loss), rel=1e-5)
    expected_acc = float((out.logits.argmax(-1) == batch["labels"]).float().mean())
    assert metrics["eval_accuracy"] == pytest.approx(expected_acc)

    checkpoint = tmp_path / "checkpoint-4"
    files = set(os.listdir(checkpoint))
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt",
            "trainer_state.json", "training_args.bin"} <= files
    assert not any(f.startswith(("model", "pytorch_model")) for f in files), files
    assert os.path.getsize(checkpoint / "adapter_model.safetensors") < 200_000
    loaded = AdapterModel.from_pretrained(tiny_bert()[0], checkpoint)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=batch["input_ids"]).logits, out.logits)

    trainer.save_model(str(tmp_path / "final"))
    assert set(os.listdir(tmp_path / "final")) == {
        "adapter_model.safetensors", "adapter_config.json", "training_args.bin"}


def test_resume_from_checkpoint_is_exact(tmp_path):
    train = rows(10, 0)
    full = model()
    AdapterTrainer(model=full, args=args(tmp_path / "a", max_steps=6, save_steps=3),
                   train_dataset=train).train()
    resumed = model()
    trainer = AdapterTrainer(model=resumed, args=args(tmp_path / "b", max_steps=6, save_steps=3),
                             train_dataset=train)
    trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-3"))
    assert trainer.state.global_step == 6
    a, b = adapter_parameters(full), adapter_parameters(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    interrupted = adapter_parameters(AdapterModel.from_pretrained(
        tiny_bert()[0], tmp_path / "a" / "checkpoint-3"))
    assert any(not torch.equal(interrupted[n], a[n]) for n in a)  # the resume did train on


def test_load_adapter_weights_in_place_and_errors(tmp_path):
    source, target = model(), model()
    with torch.no_grad():
        for p in adapter_parameters(source).values():
            p.add_(0.1)
    source.save_pretrained(tmp_path)
    params = adapter_parameters(target)
    assert load_adapter_weights(target, tmp_path) == ["default"]
    for name, p in adapter_parameters(target).items():
        assert p is params[name] and p.requires_grad
        assert torch.equal(p, adapter_parameters(source)[name])
    with pytest.raises(ValueError, match="holds no saved adapter"):
        load_adapter_weights(target, tmp_path / "missing")
    with pytest.raises(TypeError, match="must be an AdapterModel"):
        AdapterTrainer(model=tiny_bert()[0], args=args(tmp_path))


def test_best_model_and_second_adapter(tmp_path):
    """load_best_model_at_end copies the best checkpoint's adapters back; a second adapter is
    saved in its sub-folder of each checkpoint (and stays frozen: only the active trains)."""
    am = model()
    am.add_adapter("second", HammingConfig(target_modules=["query"], blocks=2))
    second = {n: p.detach().clone() for n, p in adapter_parameters(am).items() if ".second." in n}
    trainer = AdapterTrainer(
        model=am, train_dataset=rows(8, 0), eval_dataset=rows(6, 1),
        args=args(tmp_path, max_steps=6, eval_strategy="steps", eval_steps=2,
                  load_best_model_at_end=True, learning_rate=0.3))
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None and os.path.isfile(os.path.join(best, "second", "adapter_config.json"))
    saved = adapter_parameters(AdapterModel.from_pretrained(tiny_bert()[0], best))
    for name, p in adapter_parameters(am).items():
        if ".second." in name:
            assert torch.equal(p, second[name]), name
        else:
            assert torch.equal(p, saved[name]), name
    losses = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    # the best is an earlier checkpoint (lr 0.3 overshoots), so keeping the last weights fails
    assert len(losses) == 3 and not best.endswith("checkpoint-6")


def test_causal_lm_with_tied_embeddings_checkpoints_through_adapter_trainer_only(tmp_path):
    """Plain Trainer saves a non-PreTrainedModel as one safetensors state dict, which refuses
    tied weights (GPT-2's ``wte`` / ``lm_head``); AdapterTrainer writes the adapter only."""
    from qiadapters.testing import tiny_gpt2

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (8, 8), generator=g)
    lm_rows = [{"input_ids": i, "labels": i} for i in ids]
    config = HammingConfig(target_modules=["c_attn"], blocks=2)

    def gpt2():
        model = tiny_gpt2()[0]
        assert model.lm_head.weight is model.transformer.wte.weight
        return get_adapter_model(model, config)

    with pytest.raises(RuntimeError, match="share memory"):
        Trainer(model=gpt2(), args=args(tmp_path / "plain", max_steps=2, save_steps=2),
                train_dataset=lm_rows).train()

    am = gpt2()
    trainer = AdapterTrainer(model=am, args=args(tmp_path / "ours", max_steps=2, save_steps=2),
                             train_dataset=lm_rows)
    trainer.train()
    checkpoint = tmp_path / "ours" / "checkpoint-2"
    assert "adapter_model.safetensors" in os.listdir(checkpoint)
    loaded = AdapterModel.from_pretrained(tiny_gpt2()[0], checkpoint)
    want = adapter_parameters(am)
    for name, value in adapter_parameters(loaded).items():
        assert torch.equal(value, want[name]), name


def test_the_training_loss_adds_the_mixture_router_losses_and_evaluation_does_not(tmp_path):
    """A mixture's aux_loss() (router balance) joins the training loss, as a hand-written
    loop adds it; eval_loss stays the task loss."""
    from qiadapters import MixtureConfig
    am = get_adapter_model(tiny_bert()[0], MixtureConfig(
        target_modules=["query", "value"], router="token", balance=0.5,
        experts=[{"adapter_type": "hamming"}, {"adapter_type": "hamming", "blocks": 2}]))
    train = rows(4, 0)
    trainer = AdapterTrainer(model=am, args=args(tmp_path), train_dataset=train)
    inputs = {k: torch.stack([r[k] for r in train]) for k in ("input_ids", "labels")}
    am.train()
    loss = trainer.compute_loss(am, inputs)
    task = am(**inputs).loss
    aux = am.aux_loss()
    assert float(aux) > 0
    torch.testing.assert_close(loss, task + aux)
    am.eval()
    torch.testing.assert_close(trainer.compute_loss(am, inputs), am(**inputs).loss)
