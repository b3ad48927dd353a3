"""TRL's SFTTrainer and DPOTrainer on an AdapterModel of a tiny causal LM (GPT-2: tied
embeddings, Conv1D; Llama: nn.Linear): training through TRL's fused LM head, adapter-only
checkpoints, exact resumption.  References: the wrapped model's own loss and logits, an
uninterrupted run, a fresh base model for DPO's reference."""
import os

import pytest
import torch

pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
from trl import DPOConfig, SFTConfig, SFTTrainer  # noqa: E402

from qiadapters import AdapterModel, HammingConfig, get_adapter_model  # noqa: E402
from qiadapters.integrations.trl import AdapterDPOTrainer, AdapterSFTTrainer  # noqa: E402
from qiadapters.testing import adapter_parameters, base_parameters  # noqa: E402
from qiadapters.tiny_models import tiny_gpt2, tiny_llama  # noqa: E402

MODELS = {"gpt2": (tiny_gpt2, ["c_attn"]), "llama": (tiny_llama, ["q_proj", "v_proj"])}


def tokenizer():
    """Words ``w1`` ... ``w63`` are ids 1 ... 63; ``<eos>`` (id 0) ends and pads."""
    backend = Tokenizer(models.WordLevel({"<eos>": 0, **{f"w{i}": i for i in range(1, 64)}},
                                         unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<eos>")


def texts(n, seed, length=7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (n, length), generator=g)
    return Dataset.from_list([{"text": " ".join(f"w{i}" for i in row)} for row in ids.tolist()])


def model(name="gpt2"):
    factory, targets = MODELS[name]
    return get_adapter_model(factory()[0], HammingConfig(target_modules=targets, blocks=4))


def sft_args(out, **kw):
    kw = {"max_steps": 4, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 8,
          "learning_rate": 5e-2, "save_steps": 2, "use_cpu": True, "report_to": [],
          "seed": 3, "logging_steps": 1, **kw}
    return SFTConfig(output_dir=str(out), **kw)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sft_trains_the_adapters_and_reports_the_models_own_loss(name, tmp_path):
    """SFTConfig's defaults kept (bf16, gradient checkpointing); then eval in float32: TRL's
    fused loss and token accuracy equal those of the wrapped model's logits."""
    am, train, held_out = model(name), texts(8, 0), texts(8, 1)
    base = {n: p.detach().clone() for n, p in base_parameters(am).items()}
    before = {n: p.detach().clone() for n, p in adapter_parameters(am).items()}
    trainer = AdapterSFTTrainer(model=am, args=sft_args(tmp_path), train_dataset=train,
                                eval_dataset=held_out, processing_class=tokenizer())
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in adapter_parameters(am).items())
    assert all(torch.equal(p, base[n]) for n, p in base_parameters(am).items())
    assert "mean_token_accuracy" in trainer.state.log_history[0]

    trainer.args.bf16 = False  # the reference below runs in float32
    metrics = trainer.evaluate()
    am.eval()
    ids = torch.tensor(trainer.eval_dataset["input_ids"])  # as tokenized by TRL: + <eos>
    assert ids.shape == (8, 8) and (ids[:, -1] == 0).all()
    with torch.no_grad():
        out = am(input_ids=ids, labels=ids)
    assert metrics["eval_loss"] == pytest.approx(float(out.loss), rel=1e-5)
    accuracy = (out.logits[:, :-1].argmax(-1) == ids[:, 1:]).float().mean()
    assert metrics["eval_mean_token_accuracy"] == pytest.approx(float(accuracy))


def test_plain_sft_trainer_cannot_take_an_adapter_model(tmp_path):
    """What AdapterSFTTrainer is for: TRL patches its fused head onto the AdapterModel, whose
    base_model is the whole causal LM (no last_hidden_state)."""
    trainer = SFTTrainer(model=model(), args=sft_args(tmp_path, max_steps=1, save_steps=10),
                         train_dataset=texts(2, 0), processing_class=tokenizer())
    with pytest.raises(AttributeError, match="last_hidden_state"):
        trainer.train()


def test_sft_checkpoints_are_adapter_only_and_resume_exactly(tmp_path):
    """GPT-2 ties lm_head to the embeddings: a full-state-dict checkpoint would be refused."""
    train = texts(10, 0)
    full = model()
    AdapterSFTTrainer(model=full, args=sft_args(tmp_path / "a", max_steps=6, save_steps=3),
                      train_dataset=train, processing_class=tokenizer()).train()
    checkpoint = tmp_path / "a" / "checkpoint-3"
    files = set(os.listdir(checkpoint))
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt",
            "trainer_state.json", "training_args.bin"} <= files
    assert not any(f.startswith(("model", "pytorch_model")) for f in files), files
    assert os.path.getsize(checkpoint / "adapter_model.safetensors") < 100_000

    resumed = model()
    trainer = AdapterSFTTrainer(model=resumed, args=sft_args(tmp_path / "b", max_steps=6,
                                                             save_steps=3),
                                train_dataset=train, processing_class=tokenizer())
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert trainer.state.global_step == 6
    a, b = adapter_parameters(full), adapter_parameters(resumed)
    assert a.keys() == b.keys()
    for n in a:
        assert torch.equal(a[n], b[n]), n
    interrupted = adapter_parameters(AdapterModel.from_pretrained(tiny_gpt2()[0], checkpoint))
    assert any(not torch.equal(interrupted[n], a[n]) for n in a)  # the resume did train on
    final = adapter_parameters(AdapterModel.from_pretrained(
        tiny_gpt2()[0], tmp_path / "a" / "checkpoint-6"))
    for n in a:
        assert torch.equal(final[n], a[n]), n


def test_refusals_before_any_change(tmp_path):
    import peft

    data = {"args": sft_args(tmp_path), "train_dataset": texts(2, 0),
            "processing_class": tokenizer()}
    am = get_adapter_model(tiny_llama()[0], HammingConfig(target_modules=["q_proj"],
                                                          modules_to_save=["lm_head"]))
    with pytest.raises(ValueError, match="output embeddings 'lm_head' hold an adapter"):
        AdapterSFTTrainer(model=am, **data)
    assert "forward" not in am.__dict__ and "forward" not in am.base_model.__dict__
    am = model()
    with pytest.raises(ValueError, match=r"peft_config=LoraConfig\(...\) is not taken"):
        AdapterSFTTrainer(model=am, peft_config=peft.LoraConfig(target_modules=["c_proj"]),
                          **data)
    assert type(am.base_model).__name__ == "GPT2LMHeadModel" and "forward" not in am.__dict__
    with pytest.raises(TypeError, match="got GPT2LMHeadModel; use trl.SFTTrainer for other"):
        AdapterSFTTrainer(model=tiny_gpt2()[0], **data)


def preferences(n, seed):
    """TRL joins prompt and completion as strings: completions start with a space."""
    g = torch.Generator().manual_seed(seed)
    words = [" ".join(f"w{i}" for i in row) for row in torch.randint(1, 64, (3 * n, 3),
                                                                    generator=g).tolist()]
    return Dataset.from_list([{"prompt": words[3 * i], "chosen": " " + words[3 * i + 1],
                               "rejected": " " + words[3 * i + 2]} for i in range(n)])


def dpo_args(out, **kw):
    kw = {"max_steps": 4, "per_device_train_batch_size": 2, "learning_rate": 5e-2,
          "save_steps": 2, "use_cpu": True, "report_to": [], "seed": 3, "bf16": False,
          "logging_steps": 1, **kw}
    return DPOConfig(output_dir=str(out), **kw)


def sequence_logps(lm, tok, rows):
    """Sum of log p(completion | prompt) under ``lm``, from its logits (float32)."""
    out = []
    for row in rows:
        prompt = tok(row["prompt"])["input_ids"]
        for completion in (row["chosen"], row["rejected"]):
            ids = torch.tensor([prompt + tok(completion)["input_ids"] + [0]])
            with torch.no_grad():
                logps = lm(input_ids=ids).logits[0, :-1].log_softmax(-1)
            token = logps.gather(-1, ids[0, 1:, None])[:, 0]
            out.append(float(token[len(prompt) - 1:].sum()))
    return torch.tensor(out).view(-1, 2)


@pytest.mark.parametrize("reference", ["ref_model", "precomputed"])
def test_dpo_trains_against_the_base_model(reference, tmp_path):
    """The reference is the base model: a separate copy, or (precomputed) this model with its
    adapters disabled -- after an identity-breaking perturbation, so that it matters."""
    am, rows, tok = model(), preferences(6, 0), tokenizer()
    with torch.no_grad():  # adapters away from the identity: the reference must disable them
        for p in adapter_parameters(am).values():
            p.add_(0.3 * torch.randn_like(p))
    if reference == "ref_model":
        kw = {"ref_model": tiny_gpt2()[0]}
    else:
        kw = {"args": dpo_args(tmp_path, precompute_ref_log_probs=True)}
    trainer = AdapterDPOTrainer(am, **{"args": dpo_args(tmp_path), **kw},
                                train_dataset=rows, processing_class=tok)
    expected = sequence_logps(tiny_gpt2()[0], tok, rows)
    if reference == "precomputed":
        got = torch.stack([torch.tensor(trainer.train_dataset["ref_chosen_logps"]),
                           torch.tensor(trainer.train_dataset["ref_rejected_logps"])], -1)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    before = sequence_logps(am, tok, rows)
    trainer.train()
    after = sequence_logps(am, tok, rows)
    def margin(logps):  # DPO's implicit reward margin of chosen over rejected
        return float(((logps - expected) @ torch.tensor([1.0, -1.0])).mean())

    assert margin(after) > margin(before)
    files = set(os.listdir(tmp_path / "checkpoint-4"))
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    assert not any(f.startswith(("model", "pytorch_model")) for f in files), files


def test_one_model_through_sft_then_dpo(tmp_path):
    """bf16 training leaves accelerate's autocast forward on the AdapterModel; the next
    trainer's fused head still goes on the wrapped model (and the autocast forward stays)."""
    am, tok = model(), tokenizer()
    AdapterSFTTrainer(model=am, args=sft_args(tmp_path / "sft", max_steps=1, save_steps=10),
                      train_dataset=texts(2, 0), processing_class=tok).train()
    autocast_forward = am.__dict__.get("forward")
    assert autocast_forward is not None  # accelerate's, not TRL's
    before = {n: p.detach().clone() for n, p in adapter_parameters(am).items()}
    trainer = AdapterDPOTrainer(model=am, args=dpo_args(tmp_path / "dpo", max_steps=2,
                                                        precompute_ref_log_probs=True),
                                train_dataset=preferences(4, 0), processing_class=tok)
    assert am.__dict__.get("forward") is autocast_forward
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in adapter_parameters(am).items())
