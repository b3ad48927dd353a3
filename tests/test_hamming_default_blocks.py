"""The default block layout (neither ``blocks`` nor ``block_size``): ``max(3, d // 128)``
blocks, so wide layers get blocks of about 128 features; explicit options unchanged; narrow
layers, and every layer where the orders need larger blocks, as the old default (3 blocks)."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qiadapters import HammingAdapter
from qiadapters.adapters.hamming import (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS, default_blocks,
                                         plan_blocks)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)
ORDERS = st.sets(st.integers(1, 10), min_size=1, max_size=4).map(lambda s: tuple(sorted(s)))


def _layout(dim, orders, **kwargs):
    """``(blocks, block size, n, pad)`` of a plan, or the ValueError's text."""
    try:
        lay = plan_blocks(dim, orders, **kwargs)
    except ValueError as e:
        return str(e)
    return lay.blocks, lay.block_size, lay.n, lay.pad


@pytest.mark.parametrize("dim, expected", [
    (100, (3, 33, 7, 5)),      # narrow layers: 3 blocks, as before
    (384, (3, 128, 15, 8)),    # MiniLM's query/value: unchanged (n = 15)
    (511, (3, 170, 17, 17)),   # the widest layer with exactly 3 blocks
    (512, (4, 128, 15, 8)),
    (768, (6, 128, 15, 8)),    # was 3 blocks of 256, n = 22
    (1536, (12, 128, 15, 8)),  # was 3 blocks of 512, n = 31 (465 x 465 order-2 blocks)
    (4096, (32, 128, 15, 8)),  # was 3 blocks of 1365, n = 51
])
def test_default_layout_examples(dim, expected):
    assert DEFAULT_BLOCKS == 3 and DEFAULT_BLOCK_SIZE == 128
    assert _layout(dim, (1, 2)) == expected


def test_the_layer_plans_the_default_on_the_side_it_acts_on():
    ffn = nn.Linear(384, 1536)
    assert HammingAdapter(ffn).hamming["default"].block_layout.blocks == 12
    assert HammingAdapter(ffn, side="input").hamming["default"].block_layout.blocks == 3


@SETTINGS
@given(dim=st.integers(1, 10_000))
def test_default_blocks_rule(dim):
    r = default_blocks(dim)
    assert r == max(3, dim // 128)
    assert (r == 3) == (dim < 512)
    if r > 3:  # blocks of 128 to 255 features, the rest (under one block) is the tail
        assert 128 <= dim // r < 256 and dim - r * (dim // r) < dim // r


@SETTINGS
@given(dim=st.integers(1, 10_000), orders=ORDERS)
def test_default_plan_follows_the_rule(dim, orders):
    need = sum(math.comb(max(2, orders[-1]), k) for k in orders)
    got = _layout(dim, orders)
    if need <= 128:
        r = max(3, dim // 128)
        if isinstance(got, str):  # only too narrow a layer fails, and says which default
            assert dim // r < need and got.startswith(
                f"the default blocks={r} (neither blocks nor block_size given) gives block "
                f"size floor({dim} / {r}) = {dim // r}")
        else:
            assert got[:2] == (r, dim // r)


@SETTINGS
@given(dim=st.integers(1, 10_000), orders=ORDERS, r=st.integers(1, 40), b=st.integers(1, 600))
def test_explicit_blocks_and_block_size_are_unchanged(dim, orders, r, b):
    got = _layout(dim, orders, blocks=r)
    assert isinstance(got, str) or got[:2] == (r, dim // r)
    got = _layout(dim, orders, block_size=b)
    assert isinstance(got, str) or got[:2] == (dim // b, b)


@SETTINGS
@given(dim=st.integers(1, 511), orders=ORDERS, n_qubits=st.none() | st.integers(2, 24),
       butterfly=st.booleans())
def test_narrow_layers_keep_the_old_default(dim, orders, n_qubits, butterfly):
    """Below 512 features the default is the old one, ``blocks=3``: the same layout, or the
    same error (worded as the default)."""
    old = _layout(dim, orders, blocks=3, n_qubits=n_qubits, power_of_two=butterfly)
    new = _layout(dim, orders, n_qubits=n_qubits, power_of_two=butterfly)
    if isinstance(old, str):
        assert new == old.replace("blocks=3", "the default blocks=3 (neither blocks nor "
                                  "block_size given)", 1)
    else:
        assert new == old


@SETTINGS
@given(dim=st.integers(1, 20_000), orders=ORDERS, n_qubits=st.none() | st.integers(2, 24),
       butterfly=st.booleans())
def test_the_default_fits_wherever_the_old_default_did(dim, orders, n_qubits, butterfly):
    """Orders or an ``n_qubits`` that need blocks larger than 128 get fewer, larger blocks
    (at least 3), so no layer that 3 blocks fit is refused."""
    old = _layout(dim, orders, blocks=3, n_qubits=n_qubits, power_of_two=butterfly)
    new = _layout(dim, orders, n_qubits=n_qubits, power_of_two=butterfly)
    if not isinstance(old, str):
        assert not isinstance(new, str), new
        assert 3 <= new[0] <= max(3, dim // 128)


@pytest.mark.parametrize("orders, kwargs, blocks", [
    ((1, 2), {"n_qubits": 20}, 3),               # 20 + 190 = 210 dims: 768 // 210 = 3 blocks
    ((1, 2), {"n_qubits": 16}, 5),               # 136 dims: 5 blocks of 153
    (tuple(range(1, 9)), {}, 3),                 # n >= 8: 255 dims per block
    (tuple(range(1, 8)), {"power_of_two": True}, 3),  # butterfly: n = 8, 254 dims
])
def test_orders_that_need_blocks_over_128_get_fewer_blocks(orders, kwargs, blocks):
    lay = plan_blocks(768, orders, **kwargs)
    assert lay.blocks == blocks
    assert lay.block_size >= sum(math.comb(lay.n, k) for k in orders)
