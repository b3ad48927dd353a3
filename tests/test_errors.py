"""Every row of the catalogue in docs/errors.md raises what the row says, before any change.

The table is the source: each row's case id maps to a call in ``error_cases.py``; the row's
exception type and message excerpt are checked against what the call raises, and the model
the case watches and every file under its folder must be unchanged afterwards.
"""
from __future__ import annotations

import builtins
import os
import re
import sys
import warnings

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from error_cases import CASES  # noqa: E402

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "errors.md")
ROW = re.compile(r"^\| `(\w+)` \| (.*?) \| (.*?) \| ([\w ]+?) \| `(.*)` \|$")


def rows() -> list[tuple[str, str, str]]:
    with open(DOC) as f:
        found = [ROW.match(line.strip()) for line in f if line.startswith("| `")]
    return [(m.group(1), m.group(4), m.group(5)) for m in found if m]


def test_table_and_cases_match():
    ids = [r[0] for r in rows()]
    assert len(ids) == len(set(ids)), "a case id appears twice in docs/errors.md"
    assert sorted(ids) == sorted(CASES), (set(ids) ^ set(CASES))
    assert len(ids) >= 40


def _files(folder: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return out


def _model(model) -> tuple:
    if model is None:
        return ()
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    return repr(model), hooks, state, grads, model.training


def _same(before: tuple, after: tuple) -> None:
    if not before:
        return
    assert before[0] == after[0] and before[3:] == after[3:]
    assert before[2].keys() == after[2].keys()
    for k in before[2]:
        assert torch.equal(before[2][k], after[2][k]) or (
            before[2][k].isnan().any() and torch.equal(before[2][k].nan_to_num(),
                                                       after[2][k].nan_to_num())), k


@pytest.mark.parametrize("case_id, kind, excerpt", rows(), ids=[r[0] for r in rows()])
def test_catalogue_row(case_id, kind, excerpt, tmp_path, capsys):
    call, watched = CASES[case_id](str(tmp_path))
    files, state = _files(str(tmp_path)), _model(watched)
    capsys.readouterr()
    if kind == "UserWarning":
        with pytest.warns(UserWarning) as record:
            call()
        assert any(excerpt in str(w.message) for w in record), [str(w.message) for w in record]
        return
    if kind.startswith("exit "):
        with pytest.raises(SystemExit) as info:
            call()
        assert info.value.code == int(kind.split()[1])
        assert excerpt in capsys.readouterr().err
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # a refused call warns about nothing
            with pytest.raises(Exception) as info:
                call()
        assert type(info.value) is getattr(builtins, kind), repr(info.value)
        assert excerpt in str(info.value), str(info.value)
    assert _files(str(tmp_path)) == files
    after = _model(watched)
    _same(state, after)
    assert state[1:2] == after[1:2]  # no hook left on the model either
