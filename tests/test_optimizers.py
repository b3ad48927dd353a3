"""qiadapters.optimizers: the rate of each kind of parameter (angles, scales, the rest),
checked on what an optimizer step actually does, for every parametrization, shared blocks,
several adapters and a mixture; bad input refused by name before anything is built."""
import math

import pytest
import torch
from torch import nn

import qiadapters
from qiadapters.optimizers import (create_hamming_optimizer, hamming_param_groups,
                                   hamming_parameters)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.query = nn.Linear(32, 32)
        self.value = nn.Linear(32, 32)
        self.classifier = nn.Linear(32, 3)

    def forward(self, x):
        return self.classifier(self.value(self.query(x)))


def adapted(**kw):
    config = qiadapters.HammingConfig(target_modules=["query", "value"],
                                      modules_to_save=["classifier"], **kw)
    return qiadapters.get_adapter_model(Model(), config)


def kinds(model):
    """Each trainable parameter's kind, from its name alone (an independent reading)."""
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        out[id(p)] = ("scales" if ".hamming." in name and leaf == "scale" else
                      "angles" if ".hamming." in name else "other")
    return out


@pytest.mark.parametrize("config", [
    dict(orders=(1, 2), block_size=8, scale=True),
    dict(orders=(1, 2), block_size=8, parametrization="expm", scale=True),
    dict(orders=(1, 2), block_size=8, parametrization="circuit"),
    dict(orders=(1, 2, 3), block_size=8, share_blocks=True, scale=True),
], ids=["cayley-scale", "expm-scale", "circuit", "shared-scale"])
def test_groups_partition_the_trainable_parameters_by_kind(config):
    model = adapted(**config)
    groups = hamming_param_groups(model, lr=0.1, angle_lr_ratio=0.25,
                                  scale_lr_ratio=3.0 if config.get("scale") else None)
    expected_lr = {"other": 0.1, "angles": 0.025, "scales": 0.3}
    by_kind = kinds(model)
    placed = [id(p) for g in groups for p in g["params"]]
    assert sorted(placed) == sorted(by_kind)  # every trainable parameter, each once
    for g in groups:
        assert g["lr"] == pytest.approx(expected_lr[g["name"]])
        assert {by_kind[id(p)] for p in g["params"]} == {g["name"]}
    assert [g["name"] for g in groups] == (["other", "angles", "scales"] if config.get("scale")
                                          else ["other", "angles"])


def test_a_step_moves_each_kind_at_its_rate():
    """With SGD (no momentum) a step is ``p -= lr_group * grad``: the observed change over
    the gradient is the group's rate, for every parameter."""
    model = adapted(orders=(1, 2), block_size=8, scale=True)
    optimizer = create_hamming_optimizer(model, torch.optim.SGD, lr=0.1, angle_lr_ratio=0.25,
                                         scale_lr_ratio=4.0)
    x = torch.randn(5, 32)
    model(x).square().sum().backward()
    before = {id(p): p.detach().clone() for p in model.parameters() if p.requires_grad}
    grads = {id(p): p.grad.clone() for p in model.parameters() if p.requires_grad}
    optimizer.step()
    rate = {"other": 0.1, "angles": 0.025, "scales": 0.4}
    by_kind = kinds(model)
    for p in model.parameters():
        if not p.requires_grad or grads[id(p)].abs().max() < 1e-8:
            continue
        moved = before[id(p)] - p.detach()
        assert torch.allclose(moved, rate[by_kind[id(p)]] * grads[id(p)], rtol=1e-4,
                              atol=1e-7), by_kind[id(p)]
    assert set(by_kind.values()) == {"other", "angles", "scales"}


def test_default_ratios_train_like_a_plain_optimizer():
    plain = adapted(orders=(1, 2), block_size=8, scale=True)
    grouped = adapted(orders=(1, 2), block_size=8, scale=True)
    grouped.load_state_dict(plain.state_dict())
    opts = [torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad], lr=0.05),
            create_hamming_optimizer(grouped, torch.optim.AdamW, lr=0.05)]
    x = torch.randn(7, 32)
    for _ in range(3):
        for model, opt in zip((plain, grouped), opts):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for (n, a), (_, b) in zip(plain.named_parameters(), grouped.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_every_adapter_and_a_mixtures_experts_are_found_and_frozen_ones_left_out():
    model = adapted(orders=(1, 2), block_size=8, scale=True)
    model.add_adapter("second", qiadapters.HammingConfig(
        target_modules=["query"], orders=(1,), block_size=16))
    angles, scales = hamming_parameters(model)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in angles + scales} <= trainable
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".default." in names[id(p)] for p in angles + scales)  # "second" is frozen
    mix = qiadapters.get_adapter_model(Model(), qiadapters.MixtureConfig(
        target_modules=["query"], modules_to_save=["classifier"],
        experts=[qiadapters.HammingConfig(orders=(1, 2), block_size=8, scale=True),
                 qiadapters.HammingConfig(orders=(1,), block_size=16)]))
    groups = {g["name"]: g for g in hamming_param_groups(mix, lr=1.0, angle_lr_ratio=0.5)}
    assert len(hamming_parameters(mix)[1]) == 1 and groups["scales"]["lr"] == 0.5
    other = {n for n, p in mix.named_parameters() if p.requires_grad
             and any(p is q for q in groups["other"]["params"])}
    assert other and all("hamming" not in n for n in other)  # routers and head


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=0.0), "lr=0.0 is not valid; valid: a finite number > 0"),
    (dict(lr=math.nan), "lr=nan is not valid"),
    (dict(lr=0.1, angle_lr_ratio=-1), "angle_lr_ratio=-1 is not valid"),
    (dict(lr=0.1, scale_lr_ratio=True), "scale_lr_ratio=True is not valid"),
    (dict(lr=0.1, scale_lr_ratio=2.0), "scale_lr_ratio=2.0 is set but the model's Hamming "
                                       "adapters learn no scale"),
])
def test_bad_rates_are_refused_by_name(kwargs, message):
    model = adapted(orders=(1, 2), block_size=8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        create_hamming_optimizer(model, torch.optim.AdamW, **kwargs)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_a_model_without_a_hamming_adapter_is_refused():
    with pytest.raises(ValueError, match="model has no trainable Hamming adapter"):
        hamming_param_groups(Model(), lr=0.1)
