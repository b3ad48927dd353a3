"""benchmarks.frontier: the Pareto frontier against a brute-force one, the FLOP column
against a hand count, and every tiny-budget peer entry's parameters against peft's own count.
"""
import copy
import itertools
import math
import os
import random
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from benchmarks.common import registry  # noqa: E402
from benchmarks.frontier import costs, pareto  # noqa: E402
from benchmarks.frontier.tables import mark  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import minilm_shaped_bert  # noqa: E402

#: The families the frontier added (peft 0.21's methods made for tiny budgets).
TINY = {"tinylora", "unilora", "ln_tuning", "c3a", "beft", "waveft", "vblora", "randlora",
        "shira", "psoft", "delora", "gralora"}


def brute_frontier(points):
    """Every point that no other point dominates (costs no more, is at least as accurate,
    strictly better in one), duplicates after the first dropped, in increasing cost."""
    keep = []
    for i, (c, a) in enumerate(points):
        dominated = any((c2 <= c and a2 >= a and (c2 < c or a2 > a))
                        or ((c2, a2) == (c, a) and j < i)
                        for j, (c2, a2) in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


@pytest.mark.parametrize("seed", range(30))
def test_frontier_is_the_brute_force_one(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 25)
    # few distinct values, so that ties in cost, accuracy and both occur
    points = [(rng.choice([1, 2, 3, 5, 8, 13]), rng.choice([10.0, 20.0, 30.0, 40.0]))
              for _ in range(n)]
    assert pareto.frontier(points) == brute_frontier(points)


def test_frontier_skips_nan_and_gap_is_against_the_others():
    points = [(1, 50.0), (2, math.nan), (3, 60.0), (4, 55.0)]
    assert pareto.frontier(points) == [0, 2]
    assert pareto.gap(points, 3) == pytest.approx(-5.0)
    assert pareto.gap(points, 0) == math.inf    # nothing else costs 1 or less
    assert pareto.gap(points, 2) == pytest.approx(10.0)


def test_mark_checks_peers_and_ours_by_budget():
    rows = [{"task": "t", "method": m, "group": g, "adapter_params": p, "acc": a, "n_seeds": 3}
            for m, g, p, a in [("a", "peft", 100, 60.0), ("b", "qiadapters", 50, 61.0),
                               ("c", "peft", 1000, 70.0), ("d", "qiadapters", 90, 69.5),
                               ("head", "head", 0, 40.0)]]
    marked = {r["method"]: r for r in mark(rows)}
    assert not marked["head"]["point"]
    assert [m for m in "abcd" if marked[m]["on_frontier"]] == ["b", "c", "d"]
    assert marked["b"]["peer_gap"] == marked["d"]["peer_gap"] == math.inf  # no peer <= 90
    assert marked["c"]["peer_gap"] == 10.0 and marked["a"]["peer_gap"] == math.inf
    assert marked["c"]["ours_at_tenth"] == pytest.approx(-0.5)   # d: 90 <= 1000 / 10
    assert marked["a"]["ours_at_tenth"] == -math.inf             # nothing of ours <= 10


def test_step_flops_of_a_linear_is_the_hand_count():
    """Forward ``x W^T + b``: 2 B I O; backward: grad x (2 B O I) and grad W (2 O B I)."""
    B, I, O = 4, 6, 5

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(I, O)

        def forward(self, x, labels):
            return transformers.modeling_outputs.SequenceClassifierOutput(
                loss=torch.nn.functional.cross_entropy(self.lin(x), labels))

    data = {"x": torch.randn(B, I, requires_grad=True), "labels": torch.zeros(B).long()}
    assert costs.step_flops(Tiny(), data) == 3 * 2 * B * I * O


def test_fft_flops_are_5_n_log2_n_per_complex_transform():
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(3, 16, dtype=torch.complex64)
    with FlopCounterMode(display=False, custom_mapping=costs.fft_formulas()) as c:
        torch.fft.fft(x)
    assert c.get_total_flops() == 3 * 5 * 16 * 4
    with FlopCounterMode(display=False, custom_mapping=costs.fft_formulas()) as c:
        torch.fft.rfft2(torch.randn(2, 8, 8))
    assert c.get_total_flops() == 2 * 2.5 * 64 * 6


@pytest.fixture(scope="module")
def small_minilm():
    return minilm_shaped_bert(2)


@pytest.mark.parametrize("name", sorted(n for n, e in registry.METHODS.items()
                                        if e.family in TINY))
def test_tiny_budget_entry_count_is_peft_s_own(small_minilm, name):
    """The adapter parameters the benchmarks record (trainable minus the head) are peft's
    own count (``get_nb_trainable_parameters``, head included) minus the head, and one
    step builds and backpropagates."""
    model, _, record = registry.build(name, copy.deepcopy(small_minilm))
    head = registry.head_parameters(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert model.get_nb_trainable_parameters()[0] == trainable
    assert trainable - head > 0 and record["peft_type"].startswith("PeftType.")
    loss = model(input_ids=torch.randint(1, 64, (2, 8)), labels=torch.tensor([0, 1])).loss
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters()
               if p.requires_grad and "classifier" in n)


def test_tiny_budget_entries_span_the_budgets():
    """Each new family has entries at several budgets where its knobs allow it (LN tuning
    and BEFT have one: every LayerNorm, every query/value bias)."""
    per_family = {}
    for name, e in registry.METHODS.items():
        if e.family in TINY:
            per_family.setdefault(e.family, []).append(name)
    assert set(per_family) == TINY
    assert all(len(v) >= 3 for f, v in per_family.items() if f not in {"ln_tuning", "beft"})


# ----------------------------------------------------------------------- the paper's ablations

def test_approx_compound_reduces_each_minor():
    from benchmarks.frontier.ablations import approx_compound
    from benchmarks.common.paper import minors_compound, subsets

    Q = torch.randn(2, 5, 5, dtype=torch.float64)
    idx = subsets(5, 2)
    torch.testing.assert_close(approx_compound(Q, 2, idx, "det"), minors_compound(Q, 2, idx))
    got_max, got_mean = approx_compound(Q, 2, idx, "max"), approx_compound(Q, 2, idx, "mean")
    for a, I in enumerate(itertools.combinations(range(5), 2)):
        for b, J in enumerate(itertools.combinations(range(5), 2)):
            minor = Q[:, list(I)][:, :, list(J)]
            torch.testing.assert_close(got_max[:, a, b], minor.amax(dim=(-2, -1)))
            torch.testing.assert_close(got_mean[:, a, b], minor.mean(dim=(-2, -1)))
    with pytest.raises(ValueError, match="'det'"):
        approx_compound(Q, 2, idx, "median")


def test_ablation_layer_options():
    from benchmarks.frontier.ablations import AblationLinear
    from benchmarks.common.paper import DenseCompoundLinear

    torch.manual_seed(0)
    lin = torch.nn.Linear(40, 40)
    ref, one = DenseCompoundLinear(lin, (1, 2), 2), AblationLinear(lin, (1, 2), 2)
    with torch.no_grad():
        ref.weight.normal_(0, 0.3)
        one.weight.copy_(ref.weight[None])
    torch.testing.assert_close(one.dense(), ref.dense())       # the defaults are the paper's
    two = AblationLinear(lin, (1, 2), 2, copies=2)
    with torch.no_grad():
        two.weight.normal_(0, 0.3)
    D1, D2 = (AblationLinear(lin, (1, 2), 2) for _ in range(2))
    with torch.no_grad():
        D1.weight.copy_(two.weight[:1])
        D2.weight.copy_(two.weight[1:])
    torch.testing.assert_close(two.dense(), D1.dense() @ D2.dense())
    free = AblationLinear(lin, (1, 2), 2, orthogonal=False)
    n = free.layout.n
    assert free.weight.shape == (1, 2, n * n)
    torch.testing.assert_close(free.dense(), torch.eye(40))     # Q = I + 0 at the start
    with torch.no_grad():
        free.weight.normal_(0, 0.3)
    D = free.dense()
    assert not torch.allclose(D @ D.T, torch.eye(40), atol=1e-3)
    with pytest.raises(ValueError, match="copies"):
        AblationLinear(lin, (1, 2), 2, copies=0)


def test_goal_lines_count_a_loss_within_one_std_as_the_goal_tolerates():
    from benchmarks.frontier.run import goal_lines, within_std
    rows = [{"task": "t", "method": m, "label": m, "group": g, "adapter_params": p, "acc": a,
             "std": s, "n_seeds": 3}
            for m, g, p, a, s in [("peer-small", "peft", 500, 70.0, 0.5),
                                  ("ours-small", "qiadapters", 400, 68.0, 0.4),  # 2 below
                                  ("peer-big", "peft", 5000, 75.0, 0.7),
                                  ("ours-big", "qiadapters", 4000, 74.5, 0.2)]]  # 0.5 below
    lines = goal_lines(mark(rows))
    assert lines[0].endswith(": 0 of 2; within one std (the goal's tolerance): 1 of 2")
    assert "loses at 500" in lines[1] and "within one std" not in lines[1]
    assert "loses at 5,000" in lines[2] and "within one std (0.50 <= 0.70)" in lines[2]
    assert within_std({"acc": 74.5, "std": 0.8}, {"acc": 75.0, "std": 0.1})  # ours' std counts
    assert not within_std(None, {"acc": 1.0, "std": 5.0})
