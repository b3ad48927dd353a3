"""The ATen-op counter (qiadapters.op_count) against hand-derived counts, and the exact op
counts of a MiniLM-architecture training step as a regression test (benchmarks/op_count.py:
on a GPU such a step is bound by kernel launches, and each op counted is at least one)."""
import pytest
import torch
from torch import nn

from qiadapters.op_count import OpCounter, count_train_step, exclusion

aten = torch.ops.aten


def test_exclusion_rules():
    assert exclusion(aten.view.default) == "view"
    assert exclusion(aten.t.default) == "view"
    assert exclusion(aten.detach.default) == "view"
    assert exclusion(aten._unsafe_view.default) == "metadata"
    assert exclusion(aten.empty.memory_format) == "allocation"
    assert exclusion(torch.ops.prim.device.default) == "not aten"
    # in-place and out= ops return an alias they write: they run a kernel
    assert exclusion(aten.add_.Tensor) is None
    assert exclusion(aten.mm.out) is None
    assert exclusion(aten.mm.default) is None


def test_linear_relu_sum_by_hand():
    """``relu(x @ W.T + b).sum()`` and its backward, x constant. From autograd's formulas:
    forward ``linear`` = ``t(W)`` (view) + ``addmm``, then ``relu``, ``sum``; backward: the
    seed ``ones_like``, sum's ``expand`` (view), ``threshold_backward``, W's gradient
    ``mm(grad.t(), x)`` (views ``t``), b's gradient ``sum`` over the batch (+ ``view``)."""
    torch.manual_seed(0)
    lin, x = nn.Linear(4, 3), torch.randn(2, 4)
    with OpCounter() as counter:
        with counter.phase("forward"):
            loss = torch.relu(lin(x)).sum()
        with counter.phase("backward"):
            loss.backward()
    assert counter.by_op("forward") == {"aten::addmm": 1, "aten::relu": 1, "aten::sum": 1}
    assert counter.by_op("backward") == {"aten::ones_like": 1, "aten::threshold_backward": 1,
                                         "aten::mm": 1, "aten::sum": 1}
    assert counter.by_phase() == {"forward": 3, "backward": 4} and counter.total == 7
    excluded = {name for _, name in counter.excluded}
    assert {"aten::t", "aten::expand"} <= excluded
    assert all(reason == "view" for reason, _ in counter.excluded)


def test_adamw_foreach_step_by_hand():
    """torch.optim.AdamW(foreach=True), not capturable, 2 parameters, one dtype and device:
    weight decay ``_foreach_mul_``, ``_foreach_lerp_`` (first moment), ``_foreach_mul_`` +
    ``_foreach_addcmul_`` (second), ``_foreach_sqrt``, ``_foreach_div_``, ``_foreach_add_``
    (eps), ``_foreach_addcdiv_`` (update): 8 ops whatever the number of parameters. The step
    counters are 0-dim host tensors: their increment and one ``item()`` per parameter for
    each bias correction are host work (1 + 2 * 2), kept apart."""
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    batch = {"x": torch.randn(2, 4)}

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return type("Out", (), {"loss": self.lin(x).square().sum()})()

    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3, foreach=True)
    counter = count_train_step(Model(), batch, opt)
    assert counter.by_op("optimizer") == {
        "aten::_foreach_mul_": 2, "aten::_foreach_lerp_": 1, "aten::_foreach_addcmul_": 1,
        "aten::_foreach_sqrt": 1, "aten::_foreach_div_": 1, "aten::_foreach_add_": 1,
        "aten::_foreach_addcdiv_": 1}
    assert dict(counter.host) == {("optimizer", "aten::_foreach_add_"): 1,
                                  ("optimizer", "aten::_local_scalar_dense"): 4}
    assert lin.weight.grad is None  # zero_grad(set_to_none=True) ran


def test_warmup_refused():
    with pytest.raises(ValueError, match="warmup must be an int >= 0, got -1"):
        count_train_step(nn.Linear(2, 2), {}, None, warmup=-1)


@pytest.mark.parametrize("k, n, blocks, forward, backward", [
    (2, 8, 1, 9, 13), (2, 13, 8, 9, 13), (3, 11, 1, 16, 26), (3, 13, 3, 16, 26)])
def test_compound_build_op_counts(k, n, blocks, forward, backward):
    """The ops of ``compound(U, k)`` and of its backward (the gathered route the small sizes
    of benchmarks/circuits.py take): order 2 gathers ``U``'s columns twice and four rows,
    two products and a difference; its backward reads the four operands kept from the
    forward (four products, four row scatters into two zero buffers, two column scatters into
    ``dU``'s zeros). Order 3 adds one Laplace step: four gathers, a sign, a product and a sum;
    backward two products, a sign, two row-then-column scatters into zeros, and the sum of
    ``U``'s two gradients."""
    from qiadapters import compound

    U = torch.linalg.qr(torch.randn(blocks, n, n))[0].requires_grad_()
    out = compound(U, k)
    grad = torch.ones_like(out)
    with OpCounter() as counter:
        with counter.phase("forward"):
            out = compound(U, k)
        with counter.phase("backward"):
            out.backward(grad)
    assert counter.by_phase() == {"forward": forward, "backward": backward}, counter.by_op()


# (targets, method) -> (ops, forward, backward, optimizer) of one step, 2 layers of MiniLM's
# architecture, 1 x 32 tokens, train mode without dropout, the adapters' routes chosen as on
# CUDA (benchmarks/op_count.py says why both); torch 2.13, transformers 5.25, peft 0.21.2
# (`python -m benchmarks.op_count --layers 2 --out /tmp/ops` prints them).  A change is a
# change in the number of kernels a GPU step launches: update the table only for a change
# meant to make it.
EXPECTED = {
    ("query,value", "head"): (52, 39, 5, 8),
    ("query,value", "lora-r8"): (114, 55, 51, 8),
    ("query,value", "hamming-12-bs128"): (134, 67, 59, 8),
    ("query,value", "hamming-12-b3"): (134, 67, 59, 8),
    ("query,value", "hamming-12-bs32"): (134, 67, 59, 8),
    ("all-linear", "head"): (52, 39, 5, 8),
    ("all-linear", "lora-r8"): (202, 91, 103, 8),
    ("all-linear", "hamming-12-bs128"): (212, 103, 101, 8),
    ("all-linear", "hamming-12-b3"): (276, 137, 131, 8),
    ("all-linear", "hamming-12-bs32"): (212, 103, 101, 8),
}


def test_routes_as_cuda():
    """Inside routes_as("cuda") the library's device-type choices answer as on CUDA for CPU
    tensors, and are restored after: 165 blocks at n = 15 are written row pair by row pair on
    the CPU (1.8M entries >= ROW_LOOP_MIN_ENTRIES) but gathered flat on CUDA (29 MB)."""
    import importlib

    from benchmarks.op_count import routes_as

    compound = importlib.import_module("qiadapters.circuits.compound")
    route_cost = importlib.import_module("qiadapters.circuits.route_cost")
    U = torch.zeros(165, 15, 15)
    cpu_costs = route_cost.COSTS["cpu"]
    assert compound.pair_route(U) == "rows" and route_cost.costs_for("cpu") == cpu_costs
    with routes_as("cuda"):
        assert compound.pair_route(U) == "flat"
        assert route_cost.costs_for("cpu") == route_cost.COSTS["cuda"]
    assert compound.pair_route(U) == "rows" and route_cost.costs_for("cpu") == cpu_costs


def test_minilm_step_cpu_routes():
    """The same step with the CPU's routes: the order-2 compounds of 3 blocks on each of the
    13 layers (n = 15, 31 on the FFN) are written row pair by row pair, O(n) ops each."""
    from benchmarks.op_count import count_method

    row = count_method("hamming-12-b3", "all-linear", layers=2, routes="cpu")
    assert (row["ops"], row["forward"], row["backward"], row["optimizer"]) == (535, 213, 314, 8)


@pytest.fixture(scope="module")
def minilm_counts():
    from benchmarks.op_count import count_all

    methods = [(name, None) for name in ("head", "lora-r8", "hamming-12-bs128",
                                         "hamming-12-b3", "hamming-12-bs32")]
    return {(r["targets"], r["method"]): r for r in count_all(layers=2, methods=methods,
                                                                cpu_routes=False)}


@pytest.mark.parametrize("key", list(EXPECTED))
def test_minilm_step_op_counts(minilm_counts, key):
    row = minilm_counts[key]
    got = (row["ops"], row["forward"], row["backward"], row["optimizer"])
    assert got == EXPECTED[key], f"{key}: {got} != {EXPECTED[key]}; ops {row['by_op']}"


def test_minilm_added_ops(minilm_counts):
    """What each method adds over head-only, against LoRA r=8: the adapters of every target
    are counted (2 layers: 4 on query/value, 13 on all-linear, the pooler included); on every
    linear layer LoRA adds the fewest, blocks of 32 or 128 features (the default layout)
    fewer than 3 blocks on every layer (n = 31 on the FFN)."""
    rows = minilm_counts
    assert {k: rows[k]["adapted_layers"] for k in rows if k[1] != "head"} == {
        (targets, name): 4 if targets == "query,value" else 13
        for targets in ("query,value", "all-linear")
        for name in ("lora-r8", "hamming-12-bs128", "hamming-12-b3", "hamming-12-bs32")}
    for key, row in rows.items():
        assert row["added"] == row["ops"] - rows[key[0], "head"]["ops"]
        assert row["ratio_to_lora"] == round(row["added"] / rows[key[0], "lora-r8"]["added"], 3)
    added = {name: rows["all-linear", name]["added"]
             for name in ("lora-r8", "hamming-12-bs128", "hamming-12-bs32", "hamming-12-b3")}
    assert added["lora-r8"] < min(added["hamming-12-bs32"], added["hamming-12-bs128"])
    assert max(added["hamming-12-bs32"], added["hamming-12-bs128"]) < added["hamming-12-b3"]


def test_minilm_attention_fused(minilm_counts):
    """Without dropout the CPU runs its fused attention, one op each way as CUDA's kernels
    (with dropout it falls back to the math path: bmm, softmax, dropout)."""
    ops = minilm_counts["all-linear", "lora-r8"]["by_op"]
    assert ops["aten::_scaled_dot_product_flash_attention_for_cpu"] == 2
    assert ops["aten::_scaled_dot_product_flash_attention_for_cpu_backward"] == 2
    assert not any("bernoulli" in name or "softmax" in name and "log" not in name
                   for name in ops)


def test_benchmark_methods_are_registry_entries():
    from benchmarks.common import registry
    from benchmarks.op_count import METHODS, REFERENCE

    names = [name for name, _ in METHODS]
    assert set(names) <= set(registry.METHODS) and REFERENCE in names and "head" in names


#: The launch target: the default layout adds at most this many times LoRA r=8's ops per
#: train step, on MiniLM's six layers (the benchmark's table), on either target set.
MAX_VS_LORA = 1.1


@pytest.mark.parametrize("targets", [("query", "value"), "all-linear"])
def test_default_layout_adds_at_most_1_1x_lora_ops(targets):
    """Six layers as in benchmarks/results/op_count.csv: the library's default layout
    (``hamming-default``: blocks of about 32) against LoRA r=8, ops added over head-only, as on
    CUDA."""
    from benchmarks.op_count import count_method

    ops = {name: count_method(name, targets)["ops"]
           for name in ("head", "lora-r8", "hamming-default")}
    hamming, lora = ops["hamming-default"] - ops["head"], ops["lora-r8"] - ops["head"]
    assert hamming <= MAX_VS_LORA * lora, (hamming, lora)
