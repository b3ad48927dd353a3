"""``qiadapters plan`` counts in closed form: the gate counts of the layouts and the parameter
counts of the parametrizations equal what building the circuits and modules gives, the rows
are exactly what the adapter's own planner and built modules give, and a wide layer is
planned without building anything."""
from __future__ import annotations

import itertools
import time
from math import comb

import pytest
from hypothesis import given, settings, strategies as st
from torch import nn

from qiadapters import Circuit, HammingAdapter
from qiadapters.adapters.hamming import PARAMETRIZATIONS, Parametrization, plan_blocks
from qiadapters.circuits import LAYOUTS
from qiadapters.circuits.blockdiag import BlockLayout
from qiadapters.circuits.layouts import gate_count
from qiadapters.cli import main
from qiadapters.cli.plan import DEFAULT_ORDERS, plans


def buildable(layout: str, n: int) -> bool:
    return layout != "butterfly" or not n & (n - 1)


@settings(max_examples=60, deadline=None)
@given(layout=st.sampled_from(sorted(LAYOUTS)), n=st.integers(2, 64),
       depth=st.none() | st.integers(1, 12))
def test_gate_count_is_the_built_circuits(layout, n, depth):
    if not buildable(layout, n):
        with pytest.raises(ValueError, match="must be a power of two"):
            gate_count(layout, n)
        return
    options = {"depth": depth} if layout == "brick" and depth is not None else {}
    assert gate_count(layout, n, **options) == len(LAYOUTS[layout](n, **options))
    assert gate_count(layout, n) == Circuit.from_layout(layout, n).n_params


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(PARAMETRIZATIONS)), layout=st.sampled_from(sorted(LAYOUTS)),
       n=st.integers(2, 9), blocks=st.integers(1, 3), shared=st.booleans())
def test_block_params_times_copies_is_the_built_modules(name, layout, n, blocks, shared):
    if not buildable(layout, n):
        n = 1 << (n.bit_length() - 1)
    lay = BlockLayout(n=n, orders=(1,), blocks=blocks, pad=0, dim=blocks * n)
    module = PARAMETRIZATIONS[name](lay, layout=layout, share_blocks=shared)
    copies = 1 if shared else blocks
    assert PARAMETRIZATIONS[name].block_params(n, layout) * copies == module.n_params
    assert module.n_params == sum(p.numel() for p in module.parameters() if p.requires_grad)


def built_rows(dim: int, budget: int, orders, scales=(False,)) -> list[tuple]:
    """The reference: every configuration laid out by the adapter's planner
    (:func:`plan_blocks`) and counted on built modules, as comparable tuples."""
    out = []
    for ks in orders:
        for blocks in range(1, dim + 1):
            for name in PARAMETRIZATIONS:
                for layout in (LAYOUTS if name == "circuit" else ["pyramid"]):
                    try:
                        lay = plan_blocks(dim, ks, blocks=blocks,
                                          power_of_two=layout == "butterfly")
                    except ValueError:  # these blocks are too small for the orders
                        continue
                    for shared, scale in itertools.product(
                            (False, True) if blocks > 1 else (False,), scales):
                        params = PARAMETRIZATIONS[name](lay, layout=layout, share_blocks=shared,
                                                        scale=scale).n_params
                        if params <= budget:
                            out.append((params, ks, blocks, lay.n, lay.pad, lay.tail, name,
                                        layout if name == "circuit" else "-", shared, scale))
    return sorted(out)


@settings(max_examples=12, deadline=None)
@given(dim=st.integers(3, 40), budget=st.integers(1, 400),
       scales=st.sampled_from([(False,), (False, True)]))
def test_rows_are_the_built_configurations(dim, budget, scales):
    rows = plans(dim, budget, scales=scales)
    got = sorted((r["params"], r["orders"], r["blocks"], r["n"], r["pad"], r["tail"],
                  r["parametrization"], r["layout"], r["shared"], r["scale"]) for r in rows)
    assert got == built_rows(dim, budget, DEFAULT_ORDERS, scales)
    for r in rows:
        assert r["hamming_dims"] == sum(comb(r["n"], k) for k in r["orders"])
        assert r["block_size"] == r["hamming_dims"] + r["pad"]
        assert r["tail"] == dim - r["blocks"] * r["block_size"]


def test_a_wide_layer_is_planned_without_building_anything(monkeypatch, capsys):
    """Width 16384: every count in closed form (no circuit, no parametrization built), and the
    command keeps only the rows it prints."""
    def refuse(*args, **kwargs):
        raise AssertionError("plan listed gates or built a circuit or a parametrization")

    for layout in LAYOUTS:
        monkeypatch.setitem(LAYOUTS, layout, refuse)
    monkeypatch.setattr(Circuit, "__init__", refuse)
    monkeypatch.setattr(Parametrization, "__init__", refuse)
    started = time.perf_counter()
    assert main(["plan", "--dim", "16384", "--budget", "20000", "--top", "3"]) == 0
    assert time.perf_counter() - started < 20  # about 0.5 s; building took minutes
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("159516 configurations fit 20,000 parameters at width 16384")
    assert len(out) == 6 and out[2].split()[:4] == ["20,000", "1,2", "1000", "5"]


@pytest.mark.parametrize("top", ["0", "2", "50"])
def test_printed_rows_are_the_first_rows(top, capsys):
    rows = plans(96, 300)
    assert main(["plan", "--dim", "96", "--budget", "300", "--top", top]) == 0
    out = capsys.readouterr().out.splitlines()
    shown = rows[:int(top)] if top != "0" else rows
    assert out[0].startswith(f"{len(rows)} configurations fit 300 parameters at width 96")
    assert len(out) == 3 + len(shown) and out[-1].startswith("recommended: the default")
    for line, r in zip(out[2:], shown):
        cols = line.split()
        assert [int(cols[0].replace(",", "")), cols[1], int(cols[2]), int(cols[3]),
                cols[10], cols[11]] == [r["params"], ",".join(map(str, r["orders"])),
                                        r["blocks"], r["n"], r["parametrization"], r["layout"]]


@pytest.mark.parametrize("args, excerpt", [
    (["--orders", "0,1"], "argument --orders: --orders '0,1' is not valid: orders=(0, 1) "
                          "contains 0"),
    (["--orders", "1,1"], "--orders '1,1' is not valid: orders=(1, 1) has duplicates"),
    (["--top", "-1"], "argument --top: --top '-1' is not valid; give the number of rows to "
                      "print, an integer >= 1, or 0 for all of them"),
])
def test_bad_flags_name_the_flag_the_value_and_what_is_valid(args, excerpt, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["plan", "--dim", "64", "--budget", "100", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and excerpt in err[0], err


@settings(max_examples=15, deadline=None)
@given(dim=st.integers(3, 200), orders=st.sampled_from(DEFAULT_ORDERS))
def test_the_marked_row_and_the_last_line_are_what_the_defaults_build(dim, orders):
    """The row marked ``<- default`` is the layer ``HammingConfig`` builds from the orders
    alone (blocks of about 32), and the last line's counts are the built default and paper
    layouts' (orders (1, 2))."""
    from qiadapters.cli.plan import _defaults_line
    rows = [r for r in plans(dim, 10 ** 6, orders=[orders]) if r["default"]]
    try:
        built = HammingAdapter(nn.Linear(dim, dim), orders=orders).hamming["default"]
    except ValueError:  # too narrow for these orders: nothing is marked
        assert rows == []
        return
    assert [(r["blocks"], r["n"], r["params"], r["parametrization"]) for r in rows] == [
        (built.block_layout.blocks, built.block_layout.n, built.n_params, "cayley")]
    said = []
    for rule in ("compact", "paper"):
        try:
            m = HammingAdapter(nn.Linear(dim, dim), default_layout=rule).hamming["default"]
        except ValueError:
            said.append("does not fit this width")
            continue
        lay = m.block_layout
        said.append(f"{lay.blocks} blocks of {lay.block_size} (n = {lay.n}), {m.n_params:,} "
                    f"parameters")
    line = _defaults_line(dim, 10 ** 6)
    assert said[0] in line.split("; the paper")[0] and said[1] in line.split("; the paper")[1]
