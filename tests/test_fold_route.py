"""The fold route (qiadapters/adapters/hamming/fold_route.py): a Hamming layer on a linear base
run as ``F.linear(x, W', b)`` with ``W' = D^T W0`` / ``W0 D^T``, batched over a model's layers.
Against the activation route (float64: outputs and every gradient to 1e-12), the per-layer
fold against the batched one, bf16 autocast, inference and its cache, merge / unmerge, the
refusals, and the op count of a MiniLM step."""
import pytest
import torch
from torch import nn

from qiadapters import AdapterModel, HammingConfig
from qiadapters.adapters.hamming import HammingAdapter, fold_route, set_route
from qiadapters.testing import perturb


class Net(nn.Module):
    """Five layers: three of one shape (a group), two more of another; a trained head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(24, 48)
        self.b = nn.Linear(48, 48)
        self.c = nn.Linear(48, 48)
        self.d = nn.Linear(48, 48, bias=False)
        self.e = nn.Linear(48, 24)
        self.f = nn.Linear(48, 24)
        self.head = nn.Linear(24, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        h = torch.tanh(self.b(h)) + self.d(h)
        h = torch.tanh(self.c(h))
        return self.head(torch.tanh(self.e(h) + self.f(h)))


TARGETS = ["a", "b", "c", "d", "e", "f"]


def _model(dtype=torch.float64, second=None, **options):
    torch.manual_seed(0)
    options.setdefault("block_size", 8)
    am = AdapterModel(Net().to(dtype), HammingConfig(target_modules=TARGETS, **options))
    am.base_model.head.weight.requires_grad_(True)
    am.base_model.head.bias.requires_grad_(True)
    if second is not None:
        am.add_adapter("second", HammingConfig(target_modules=TARGETS, **second))
        am.set_adapter(["default", "second"])
    return perturb(am, scale=0.3)


def _step(am, dtype=torch.float64, x=None):
    torch.manual_seed(1)
    x = torch.randn(2, 5, 24, dtype=dtype) if x is None else x
    am.zero_grad(set_to_none=True)
    out = am(x)
    out.square().sum().backward()
    return out.detach(), {n: p.grad for n, p in am.named_parameters() if p.requires_grad}


def _assert_same(a, b, tol):
    (out_a, g_a), (out_b, g_b) = a, b
    torch.testing.assert_close(out_a, out_b, atol=tol, rtol=0)
    assert g_a.keys() == g_b.keys()
    for name in g_a:
        assert (g_a[name] is None) == (g_b[name] is None), name
        if g_a[name] is not None:
            torch.testing.assert_close(g_a[name], g_b[name], atol=tol, rtol=0, msg=name)


CASES = {
    "output": {},
    "input": {"side": "input"},
    "scale-output": {"scale": True},
    "scale-input": {"side": "input", "scale": True},
    "shared": {"share_blocks": True},
    "expm": {"parametrization": "expm"},
    "circuit": {"parametrization": "circuit"},
    "orders-123-tail": {"orders": (1, 2, 3), "block_size": 20},
}


@pytest.mark.parametrize("case", list(CASES))
def test_fold_matches_activation_float64(case, monkeypatch):
    """Outputs and the gradients of angles, scales and the head to 1e-12; batched (in the
    model call) and per layer."""
    am = _model(**CASES[case])
    ref = _step(am)
    set_route(am, "fold")
    assert all(m.route == "fold" for m in am.modules() if isinstance(m, HammingAdapter))
    batched = _step(am)
    _assert_same(ref, batched, 1e-12)
    monkeypatch.setattr(fold_route, "may_batch", lambda: False)
    _assert_same(ref, _step(am), 1e-12)
    set_route(am, "activation")
    _assert_same(ref, _step(am), 0)


def test_no_host_sync_in_forward():
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
    from testing_utils import HostSyncs

    am = _model(scale=True)
    set_route(am, "fold")
    with HostSyncs(am) as found:
        am(torch.randn(2, 5, 24, dtype=torch.float64)).sum().backward()
    assert not found.ops


@pytest.mark.parametrize("second", [{"block_size": 12}, {"side": "input", "scale": True},
                                    {"block_size": 8, "side": "output", "scale": True}])
@pytest.mark.parametrize("side", ["output", "input"])
def test_stacked_adapters(side, second):
    am = _model(side=side, second=second)
    ref = _step(am)
    set_route(am, "fold")
    _assert_same(ref, _step(am), 1e-12)


def test_one_build_per_group():
    """The batched fold runs once per model call: every fold-route layer takes its weight
    from it (the groups: b, c, d; e, f; a alone folds itself)."""
    am = _model()
    set_route(am, "fold")
    calls = []
    build = fold_route._build

    def counted(model):
        out = build(model)
        calls.append(sorted(len(v) for v in [out[0]]))
        return out

    fold_route._build = counted
    try:
        _step(am)
    finally:
        fold_route._build = build
    assert len(calls) == 1 and calls[0] == [5]


def test_layer_not_run_gets_no_gradient():
    """A fold-route layer whose weight was folded in the call but which did not run gets no
    gradient (None), as with the activation route."""
    am = _model()
    am.base_model.forward = lambda x: am.base_model.head(torch.tanh(am.base_model.e(
        torch.tanh(am.base_model.c(torch.tanh(am.base_model.a(x)))))))
    # a, c (in the b/c/d group), e (in the e/f group) run; b, d, f do not
    ref = _step(am)
    set_route(am, "fold")
    got = _step(am)
    _assert_same(ref, got, 1e-12)
    assert got[1]["base_model.b.hamming.default.weight"] is None
    assert got[1]["base_model.f.hamming.default.weight"] is None


def test_autocast_bf16():
    """Under bf16 autocast the fold runs in float32 and the weight is cast: both routes agree
    with a float64 reference to bf16's precision, and the gradients reach every adapter."""
    am = _model(torch.float32)
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        ref = am.double()(x.double()).float()
    am.float()
    set_route(am, "fold")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = am(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)
    out.float().square().sum().backward()
    for name, p in am.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_bf16_base():
    am = _model(torch.float32)
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        ref = am(x)
    am.to(torch.bfloat16)
    set_route(am, "fold")
    out = am(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=6e-2, rtol=6e-2)


def test_eval_inference_cache_and_merge():
    am = _model()
    am.eval()
    x = torch.randn(3, 24, dtype=torch.float64)
    with torch.no_grad():
        ref = am(x)
    set_route(am, "fold")
    with torch.no_grad():
        first = am(x)
        layer = am.base_model.b
        kept = layer.__dict__["_fold_cache"][2]
        again = am(x)
        assert layer.__dict__["_fold_cache"][2] is kept  # reused
    torch.testing.assert_close(first, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(again, ref, atol=1e-12, rtol=0)
    with torch.no_grad():  # a parameter changes: the kept weight is not reused
        layer.hamming["default"].weight.add_(0.1)
        changed = am(x)
        assert layer.__dict__["_fold_cache"][2] is not kept
    set_route(am, "activation")
    with torch.no_grad():
        torch.testing.assert_close(changed, am(x), atol=1e-12, rtol=0)
    with torch.inference_mode():
        set_route(am, "fold")
        torch.testing.assert_close(am(x), changed, atol=1e-12, rtol=0)
    # merging folds the same weights; unmerging restores the base; the route is untouched
    base = {n: p.clone() for n, p in am.named_parameters() if not p.requires_grad}
    am.merge_adapter()
    with torch.no_grad():
        torch.testing.assert_close(am(x), changed, atol=1e-12, rtol=0)
    am.unmerge_adapter()
    for n, p in am.named_parameters():
        if n in base:
            torch.testing.assert_close(p, base[n], atol=1e-12, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(am(x), changed, atol=1e-12, rtol=0)


def test_gpt2_conv1d():
    from qiadapters.tiny_models import tiny_gpt2

    model, batch = tiny_gpt2()
    am = perturb(AdapterModel(model.double(), HammingConfig(target_modules=["c_attn", "c_proj"],
                                                            block_size=8)), scale=0.3)

    def step():
        am.zero_grad(set_to_none=True)
        out = am(**batch).logits
        out.square().sum().backward()
        return out.detach(), {n: p.grad for n, p in am.named_parameters() if p.requires_grad}

    ref = step()
    set_route(am, "fold")
    _assert_same(ref, step(), 1e-12)


class Custom(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


def test_refusals():
    am = _model()
    with pytest.raises(ValueError, match=r"route='fast' is not valid; valid routes: "
                                         r"'activation', 'fold'"):
        set_route(am, "fast")
    with pytest.raises(ValueError, match="found no Hamming layer"):
        set_route(nn.Linear(2, 2), "fold")
    net = Net()
    net.b = Custom(48, 48)
    conv = nn.Sequential(nn.Conv2d(24, 24, 1))
    for model, target, what in [(net, "b", "overrides forward"),
                                (conv, "0", "torch.nn.modules.conv.Conv2d")]:
        am = AdapterModel(model, HammingConfig(target_modules=["a", target] if target == "b"
                                               else [target], block_size=8))
        with pytest.raises(ValueError, match=rf"route='fold' cannot run on the Hamming layer "
                                             rf"'base_model.{target}': .*{what}"):
            set_route(am, "fold")
        # raised before any change
        assert all(m.route == "activation" for m in am.modules()
                   if isinstance(m, HammingAdapter))


#: (targets, row) -> ops of one step on MiniLM's architecture (6 layers, as in
#: benchmarks/results/op_count.csv; torch 2.13, transformers 5.25, peft 0.21.2)
FOLD_EXPECTED = {
    ("all-linear", "head"): 100, ("all-linear", "lora-r8"): 546,
    ("all-linear", "hamming-12-bs32+fold"): 258, ("all-linear", "hamming-12-bs128+fold"): 258,
    ("all-linear", "targets-full-ft"): 219,
    ("query,value", "head"): 100, ("query,value", "lora-r8"): 298,
    ("query,value", "hamming-12-bs32+fold"): 223, ("query,value", "hamming-12-bs128+fold"): 223,
    ("query,value", "targets-full-ft"): 194,
}


def test_minilm_fold_op_counts():
    """The fold route's ops per train step on MiniLM's architecture (benchmarks/op_count.py):
    exact (a change is a change in the kernels a GPU step launches), at most 0.5x LoRA r=8's
    added ops on all-linear; on query/value most of what it adds is the backward through the
    encoder that every method pays (the targets' own weights trained add 94 of LoRA's 198)."""
    from benchmarks.op_count import count_all

    methods = [("head", None), ("lora-r8", None), ("hamming-12-bs32+fold", None),
               ("hamming-12-bs128+fold", None), ("targets-full-ft", None)]
    rows = {(r["targets"], r["method"]): r for r in count_all(layers=6, methods=methods,
                                                               cpu_routes=False)}
    got = {key: rows[key]["ops"] for key in FOLD_EXPECTED}
    assert got == FOLD_EXPECTED, {k: rows[k]["by_op"] for k in got if got[k] != FOLD_EXPECTED[k]}
    for name in ("hamming-12-bs32+fold", "hamming-12-bs128+fold"):
        assert rows["all-linear", name]["ratio_to_lora"] <= 0.5
        assert rows["query,value", name]["ratio_to_lora"] < 1
    assert rows["all-linear", "hamming-12-bs32+fold"]["adapted_layers"] == 37
    # no host syncs: the head-only step's read-backs (in the base model) are all there are
    for key, row in rows.items():
        head = rows[key[0], "head"]["by_op"]
        for op in ("aten::_local_scalar_dense", "aten::nonzero", "aten::item"):
            assert row["by_op"].get(op, 0) == head.get(op, 0), (key, op)


@pytest.mark.slow
@pytest.mark.parametrize("route", ["activation", "fold"])
def test_compiled_train_step_inductor(route):
    """``torch.compile(model, fullgraph=True)`` with inductor (CPU) compiles an adapted train
    step, forward and backward, as one graph each way, for both routes; outputs and
    gradients equal eager's."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 24), nn.Tanh(),
                          nn.Linear(24, 3))
    am = perturb(AdapterModel(model, HammingConfig(target_modules=["0", "2"], block_size=8,
                                                   scale=True)), scale=0.3)
    am.base_model[4].weight.requires_grad_(True)  # a trained head
    if route == "fold":
        set_route(am, "fold")
    x = torch.randn(2, 5, 24)
    eager = _step(am, torch.float32, x)
    compiled = torch.compile(am, backend="inductor", fullgraph=True)
    for _ in range(2):  # the second call runs the compiled graph again, no recompile
        am.zero_grad(set_to_none=True)
        out = compiled(x)
        out.square().sum().backward()
    _assert_same(eager, (out.detach(), {n: p.grad for n, p in am.named_parameters()
                                        if p.requires_grad}), 1e-4)


def test_kept_weight_not_copied_or_pickled():
    import copy
    import pickle

    am = _model()
    set_route(am, "fold")
    am.eval()
    x = torch.randn(3, 24, dtype=torch.float64)
    with torch.inference_mode():
        expected = am(x)
    assert "_fold_cache" in am.base_model.b.__dict__
    for clone in (copy.deepcopy(am), pickle.loads(pickle.dumps(am))):
        assert "_fold_cache" not in clone.base_model.b.__dict__
        assert clone.base_model.b.route == "fold"
        with torch.no_grad():
            torch.testing.assert_close(clone(x), expected, atol=1e-12, rtol=0)
