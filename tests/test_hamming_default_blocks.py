"""The layout of a layer whose config gives neither ``blocks`` nor ``block_size``, under both
rules: ``"compact"`` (the default: ``max(1, d // 32)`` blocks, about 32 features each) and
``"paper"`` (``max(3, d // 128)``: 3 blocks below 512 features, about 128 above).  Explicit
options are unchanged; orders or an ``n_qubits`` that need larger blocks get fewer, larger
ones, so the default fits every layer that its fewest blocks fit."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qiadapters import HammingAdapter, HammingConfig
from qiadapters.adapters.hamming import (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS, DEFAULT_LAYOUT,
                                         DEFAULT_LAYOUTS, default_blocks, plan_blocks)

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
ORDERS = st.sets(st.integers(1, 10), min_size=1, max_size=4).map(lambda s: tuple(sorted(s)))
RULES = pytest.mark.parametrize("rule, fewest, size", [("compact", 1, 32), ("paper", 3, 128)])


def _layout(dim, orders, **kwargs):
    """``(blocks, block size, n, pad)`` of a plan, or the ValueError's text."""
    try:
        lay = plan_blocks(dim, orders, **kwargs)
    except ValueError as e:
        return str(e)
    return lay.blocks, lay.block_size, lay.n, lay.pad


def test_the_default_is_blocks_of_about_32():
    assert DEFAULT_LAYOUT == "compact" and DEFAULT_LAYOUTS == {"compact": (1, 32),
                                                               "paper": (3, 128)}
    assert (DEFAULT_BLOCKS, DEFAULT_BLOCK_SIZE) == (1, 32)
    assert HammingConfig().default_layout == "compact"
    assert HammingConfig.paper(target_modules=["q"]).default_layout == "paper"
    assert HammingConfig.paper(orders=(1, 2, 3)).orders == (1, 2, 3)


@pytest.mark.parametrize("dim, expected", [
    (16, (1, 16, 5, 1)),       # narrower than a block: one block of the whole layer
    (48, (1, 48, 9, 3)),       # one block of 48 (block_size=32 would leave 16 untouched)
    (100, (3, 33, 7, 5)),
    (128, (4, 32, 7, 4)),      # the ViT's width: blocks of 32, n = 7 (21 angles each)
    (384, (12, 32, 7, 4)),     # MiniLM's query/value: block_size=32's layout
    (1536, (48, 32, 7, 4)),
])
def test_compact_examples(dim, expected):
    assert _layout(dim, (1, 2)) == expected == _layout(dim, (1, 2), default_layout="compact")


@pytest.mark.parametrize("dim, expected", [
    (100, (3, 33, 7, 5)),      # narrow layers: 3 blocks, the paper's layout
    (384, (3, 128, 15, 8)),    # MiniLM's query/value (n = 15)
    (511, (3, 170, 17, 17)),   # the widest layer with exactly 3 blocks
    (512, (4, 128, 15, 8)),
    (768, (6, 128, 15, 8)),
    (1536, (12, 128, 15, 8)),
    (4096, (32, 128, 15, 8)),
])
def test_paper_examples(dim, expected):
    assert _layout(dim, (1, 2), default_layout="paper") == expected


def test_the_layer_plans_the_default_on_the_side_it_acts_on():
    ffn = nn.Linear(384, 1536)
    assert HammingAdapter(ffn).hamming["default"].block_layout.blocks == 48
    assert HammingAdapter(ffn, side="input").hamming["default"].block_layout.blocks == 12
    paper = HammingAdapter(ffn, default_layout="paper").hamming["default"].block_layout
    assert paper.blocks == 12
    assert HammingAdapter(ffn, side="input", default_layout="paper").hamming[
        "default"].block_layout.blocks == 3


def test_an_unknown_rule_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"default_layout='tiny'.*compact.*paper"):
        HammingConfig(default_layout="tiny")
    with pytest.raises(ValueError, match=r"default_layout='tiny'"):
        HammingAdapter(nn.Linear(8, 8), default_layout="tiny")


@RULES
@SETTINGS
@given(dim=st.integers(1, 10_000))
def test_default_blocks_rule(rule, fewest, size, dim):
    r = default_blocks(dim, default_layout=rule)
    assert r == max(fewest, dim // size)
    assert (r == fewest) == (dim < (fewest + 1) * size)
    if r > fewest:  # blocks of size to 2 size - 1 features, the rest (under one block) the tail
        assert size <= dim // r < 2 * size and dim - r * (dim // r) < dim // r


@RULES
@SETTINGS
@given(dim=st.integers(1, 10_000), orders=ORDERS)
def test_default_plan_follows_the_rule(rule, fewest, size, dim, orders):
    need = sum(math.comb(max(2, orders[-1]), k) for k in orders)
    got = _layout(dim, orders, default_layout=rule)
    if need <= size:
        r = max(fewest, dim // size)
        if isinstance(got, str):  # only too narrow a layer fails, and says which rule
            assert dim // r < need and got.startswith(
                f"default_layout={rule!r} (neither blocks nor block_size given: blocks={r}) "
                f"gives block size floor({dim} / {r}) = {dim // r}")
        else:
            assert got[:2] == (r, dim // r)


@SETTINGS
@given(dim=st.integers(1, 10_000), orders=ORDERS, r=st.integers(1, 40), b=st.integers(1, 600),
       rule=st.sampled_from(sorted(DEFAULT_LAYOUTS)))
def test_explicit_blocks_and_block_size_ignore_the_rule(dim, orders, r, b, rule):
    got = _layout(dim, orders, blocks=r, default_layout=rule)
    assert isinstance(got, str) or got[:2] == (r, dim // r)
    got = _layout(dim, orders, block_size=b, default_layout=rule)
    assert isinstance(got, str) or got[:2] == (dim // b, b)


@RULES
@SETTINGS
@given(dim=st.integers(1, 20_000), orders=ORDERS, n_qubits=st.none() | st.integers(2, 24),
       butterfly=st.booleans())
def test_the_rule_fits_wherever_its_fewest_blocks_do(rule, fewest, size, dim, orders,
                                                     n_qubits, butterfly):
    """Orders or an ``n_qubits`` that need blocks larger than ``size`` get fewer, larger
    blocks (at least ``fewest``), so no layer that ``fewest`` blocks fit is refused; below
    ``(fewest + 1) * size`` features the rule is ``blocks=fewest``, error text included."""
    old = _layout(dim, orders, blocks=fewest, n_qubits=n_qubits, power_of_two=butterfly)
    new = _layout(dim, orders, n_qubits=n_qubits, power_of_two=butterfly, default_layout=rule)
    if not isinstance(old, str):
        assert not isinstance(new, str), new
        assert fewest <= new[0] <= max(fewest, dim // size)
    if dim < (fewest + 1) * size:
        if isinstance(old, str):
            assert new == old.replace(
                f"blocks={fewest}", f"default_layout={rule!r} (neither blocks nor block_size "
                f"given: blocks={fewest})", 1)
        else:
            assert new == old


@pytest.mark.parametrize("orders, kwargs, blocks", [
    ((1, 2), {"n_qubits": 20}, 3),               # 20 + 190 = 210 dims: 768 // 210 = 3 blocks
    ((1, 2), {"n_qubits": 16}, 5),               # 136 dims: 5 blocks of 153
    (tuple(range(1, 9)), {}, 3),                 # n >= 8: 255 dims per block
    (tuple(range(1, 8)), {"power_of_two": True}, 3),  # butterfly: n = 8, 254 dims
    ((1, 2, 3), {}, 24),                         # n = 5 needs 25 dims: blocks of 32
    ((1, 2, 3, 4), {}, 24),                      # n = 4 needs 15 dims: blocks of 32
    ((1, 2), {"n_qubits": 8}, 21),               # 36 dims: 21 blocks of 36
])
def test_orders_that_need_larger_blocks_get_fewer_blocks(orders, kwargs, blocks):
    lay = plan_blocks(768, orders, **kwargs)
    assert lay.blocks == blocks
    assert lay.block_size >= sum(math.comb(lay.n, k) for k in orders)
    need = sum(math.comb(lay.n, k) for k in orders)  # the paper's rule: blocks of >= 128
    assert plan_blocks(768, orders, default_layout="paper", **kwargs).blocks == \
        max(3, 768 // max(128, need))
