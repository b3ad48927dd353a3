"""Batched block building: inside a call of an ``AdapterModel`` the Hamming layers' blocks are
built group by group in one pass.  Against each layer building its own (the verified route),
and the dense ``D`` of every layer; one build per group; when it must not happen."""
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from qiadapters import AdapterModel, HammingConfig
from qiadapters.adapters.hamming import batched, parametrizations
from qiadapters.testing import perturb


class Net(nn.Module):
    """Two widths (two groups at the same n) and a layer the forward may skip."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(24, 48)
        self.b = nn.Linear(48, 48)
        self.c = nn.Linear(48, 24)
        self.skipped = nn.Linear(24, 24)
        self.use_checkpoint = None

    def forward(self, x, skip=True):
        h = torch.tanh(self.a(x))
        if self.use_checkpoint is None:
            h = torch.tanh(self.b(h))
        else:
            h = checkpoint(lambda t: torch.tanh(self.b(t)), h, use_reentrant=self.use_checkpoint)
        out = self.c(h)
        return out if skip else self.skipped(out)


def _model(dtype=torch.float64, **options):
    torch.manual_seed(0)
    options.setdefault("blocks", 2)
    cfg = HammingConfig(target_modules=["a", "b", "c", "skipped"], **options)
    return perturb(AdapterModel(Net().to(dtype), cfg), scale=0.3)


def _run(am, batch: bool, monkeypatch, dtype=torch.float64, **kwargs):
    monkeypatch.setattr(batched, "may_batch", (lambda: False) if not batch else _ALLOWED)
    torch.manual_seed(1)
    x = torch.randn(5, 24, dtype=dtype)
    am.zero_grad(set_to_none=True)
    out = am(x, **kwargs)
    out.square().sum().backward()
    return out.detach(), {n: p.grad for n, p in am.named_parameters() if p.requires_grad}


_ALLOWED = batched.may_batch


def _assert_same(a, b, tol):
    (out_a, g_a), (out_b, g_b) = a, b
    torch.testing.assert_close(out_a, out_b, atol=tol, rtol=0)
    assert g_a.keys() == g_b.keys()
    for name in g_a:
        if g_b[name] is None:
            assert g_a[name] is None, name
        else:
            torch.testing.assert_close(g_a[name], g_b[name], atol=tol, rtol=0, msg=name)


@pytest.mark.parametrize("options", [dict(), dict(parametrization="expm"),
                                     dict(orders=(1, 2, 3), blocks=1),
                                     dict(share_blocks=True), dict(side="input")])
def test_batched_equals_per_layer_and_dense(monkeypatch, options):
    am = _model(**options)
    together = _run(am, True, monkeypatch)
    alone = _run(am, False, monkeypatch)
    _assert_same(together, alone, 1e-12)
    # and the dense reference: each layer is (x W^T) D + b (output side) / (x D) W^T + b
    torch.manual_seed(1)
    x = torch.randn(5, 24, dtype=torch.float64)
    h = x
    for name in ("a", "b", "c"):
        layer = getattr(am.base_model, name)
        W0, b0 = layer.base_layer.weight, layer.base_layer.bias
        D = layer.hamming["default"].dense(torch.float64)
        h = (h @ W0.T) @ D + b0 if layer.side["default"] == "output" else (h @ D) @ W0.T + b0
        h = torch.tanh(h) if name != "c" else h
    torch.testing.assert_close(together[0], h.detach(), atol=1e-12, rtol=0)


def test_one_build_per_group(monkeypatch):
    am = _model(dtype=torch.float32)
    calls = []
    original = parametrizations.Cayley.orthogonal

    def spy(self, dtype=None, weight=None):
        Q = original(self, dtype, weight)
        calls.append(tuple(Q.shape))
        return Q

    monkeypatch.setattr(parametrizations.Cayley, "orthogonal", spy)
    _run(am, True, monkeypatch, dtype=torch.float32)
    # widths 48 (a, b: blocks of 24, n = 6) and 24 (c, skipped: blocks of 12, n = 4)
    assert sorted(calls) == [(4, 4, 4), (4, 6, 6)]
    calls.clear()
    _run(am, False, monkeypatch, dtype=torch.float32)
    assert len(calls) == 3  # per layer: the three layers that ran


def test_a_layer_that_did_not_run_gets_no_gradient(monkeypatch):
    am = _model()
    out, grads = _run(am, True, monkeypatch)
    assert grads["base_model.skipped.hamming.default.weight"] is None
    assert grads["base_model.c.hamming.default.weight"] is not None
    _assert_same(_run(am, True, monkeypatch, skip=False), _run(am, False, monkeypatch, skip=False),
                 1e-12)


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing(monkeypatch, reentrant):
    am = _model()
    am.base_model.use_checkpoint = reentrant
    _assert_same(_run(am, True, monkeypatch), _run(am, False, monkeypatch), 1e-12)


def test_not_batched_where_it_must_not(monkeypatch):
    am = _model(dtype=torch.float32)
    seen = []
    original = batched._build
    monkeypatch.setattr(batched, "_build", lambda *a: seen.append(1) or original(*a))
    x = torch.randn(3, 24)
    am.eval()
    with torch.no_grad():
        am(x)
    am(x)  # eval mode: the inference route
    am.train()
    with torch.no_grad():
        am(x)
    with torch.autograd.graph.save_on_cpu():
        am(x)
    with am.disable_adapter():
        am(x)
    layer = am.base_model.a
    layer.hamming["default"](torch.randn(2, 48))  # no model call running
    assert seen == []
    am(x)
    assert seen == [1]


def test_merged_layers_and_inactive_adapters_are_left_out(monkeypatch):
    am = _model()
    am.add_adapter("other", HammingConfig(target_modules=["a", "b"], blocks=2))
    am.base_model.b.merge()
    members = [p for p, _ in batched._members(am.base_model)]
    names = {id(getattr(am.base_model, n).hamming["default"]): n
             for n in ("a", "b", "c", "skipped")}
    assert sorted(names[id(p)] for p in members) == ["a", "c", "skipped"]
    am.base_model.b.unmerge()
    _assert_same(_run(am, True, monkeypatch), _run(am, False, monkeypatch), 1e-12)


def test_stacked_adapters(monkeypatch):
    am = _model()
    am.add_adapter("other", HammingConfig(target_modules=["a", "b", "c"], blocks=3))
    am.set_adapter(["default", "other"])
    perturb(am, scale=0.2, seed=3)
    _assert_same(_run(am, True, monkeypatch), _run(am, False, monkeypatch), 1e-12)


@pytest.mark.parametrize("reentrant", [None, False, True])
def test_transformers_model_with_and_without_gradient_checkpointing(monkeypatch, reentrant):
    """A BERT encoder (all linear layers adapted): the same loss and gradients batched or
    not, also under ``gradient_checkpointing_enable`` in either mode."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=128,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     num_labels=3)
    model = transformers.BertForSequenceClassification(config).double()
    if reentrant is not None:
        model.gradient_checkpointing_enable({"use_reentrant": reentrant})
    am = perturb(AdapterModel(model, HammingConfig(target_modules="all-linear")), scale=0.3)
    am.train()
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(2))

    def run(batch):
        monkeypatch.setattr(batched, "may_batch", _ALLOWED if batch else (lambda: False))
        am.zero_grad(set_to_none=True)
        loss = am(input_ids=ids, labels=torch.tensor([0, 1, 2])).loss
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in am.named_parameters() if p.requires_grad}

    _assert_same(run(True), run(False), 1e-12)


def test_layer_list_follows_the_module_tree(monkeypatch):
    """The Hamming layers a batched build looks for are kept between calls, refreshed when any
    module is registered, and a copy of the model walks its own tree."""
    import copy

    from qiadapters import HammingAdapter

    am = _model()
    first = batched._hamming_layers(am)
    assert first == [m for m in am.modules() if isinstance(m, HammingAdapter)]
    assert batched._hamming_layers(am) == first  # kept
    twin = copy.deepcopy(am)
    mine = batched._hamming_layers(twin)
    assert len(mine) == len(first) and not {id(m) for m in mine} & {id(m) for m in first}
    # a new adapted module registered on the model is found by the next call ...
    am.base_model.extra = HammingAdapter(nn.Linear(24, 24, dtype=torch.float64), blocks=2)
    assert am.base_model.extra in batched._hamming_layers(am)
    # ... and the batched build still equals per-layer building afterwards
    _assert_same(_run(am, True, monkeypatch), _run(am, False, monkeypatch), 1e-12)
    # a layer removed without a registration stays listed, and nothing changes for the rest
    del am.base_model.extra
    _assert_same(_run(am, True, monkeypatch), _run(am, False, monkeypatch), 1e-12)
