"""``add_weighted_adapter`` for Hamming adapters: the combination is orthogonal (dense
``D^T D = I`` to 1e-6), merges as it runs, equals its definition computed independently
(scipy's ``expm`` on numpy arrays, the stacked adapters for a unit product), and weights
``(1, 0)`` give the first adapter exactly; bad calls are refused before the model changes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import physics
from qiadapters import HammingConfig, get_adapter_model
from qiadapters.testing import perturb
from qiadapters.tiny_models import tiny_bert


def _pair(parametrization="cayley", side="output", scale=0.4):
    model, batch = tiny_bert()
    config = HammingConfig(target_modules=["query", "value"], orders=(1, 2), blocks=2,
                           parametrization=parametrization, side=side)
    am = get_adapter_model(model, config)
    am.add_adapter("b", config)
    perturb(am, scale=scale)
    return am.eval(), batch


def _layers(am):
    return [layer for _, layer in am.adapter_layers() if hasattr(layer, "hamming")]


def _skew(w: np.ndarray, n: int) -> np.ndarray:
    S = np.zeros((w.shape[0], n, n))
    iu = np.triu_indices(n, 1)
    S[:, iu[0], iu[1]] = w
    return S - S.transpose(0, 2, 1)


def _cayley(S: np.ndarray) -> np.ndarray:
    eye = np.eye(S.shape[-1])
    return np.stack([np.linalg.solve(eye + s, eye - s) for s in S])


def _map(parametrization, S):
    return _cayley(S) if parametrization == "cayley" else np.stack([scipy.linalg.expm(s)
                                                                    for s in S])


@pytest.mark.parametrize("parametrization", ["cayley", "expm"])
@pytest.mark.parametrize("kind, weights", [("generator", (0.7, -1.3)), ("product", (0.6, 1.5)),
                                           ("product", (1, 1))])
def test_combination_is_orthogonal_merges_and_equals_its_definition(parametrization, kind,
                                                                    weights):
    am, batch = _pair(parametrization)
    am.add_weighted_adapter(["default", "b"], list(weights), "ab", combination_type=kind)
    for layer in _layers(am):
        rot, n = layer.hamming["ab"], layer.hamming["ab"].block_layout.n
        D = layer.delta_matrix("ab").double()
        torch.testing.assert_close(D.T @ D, torch.eye(D.shape[0], dtype=D.dtype),
                                   atol=1e-6, rtol=0)
        S = [_skew(layer.hamming[a].weight.detach().double().numpy(), n) for a in ("default", "b")]
        if kind == "generator":
            Q = _map(parametrization, weights[0] * S[0] + weights[1] * S[1])
        else:
            Q = _map(parametrization, weights[0] * S[0]) @ _map(parametrization, weights[1] * S[1])
        np.testing.assert_allclose(rot.orthogonal(torch.float64).detach().numpy(), Q,
                                   atol=1e-6, rtol=0)
    am.set_adapter("ab")
    with torch.no_grad():
        forward = am(**batch).logits
        am.merge_adapter()
        merged = am(**batch).logits
    torch.testing.assert_close(merged, forward, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["output", "input"])
def test_unit_product_is_the_two_adapters_stacked(side):
    am, batch = _pair("expm", side)
    am.add_weighted_adapter(["default", "b"], [1, 1], "ab", combination_type="product")
    with torch.no_grad():
        am.set_adapter(["default", "b"])
        stacked = am(**batch).logits
        am.set_adapter("ab")
        combined = am(**batch).logits
    torch.testing.assert_close(combined, stacked, atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        am.set_adapter("default")
        assert (am(**batch).logits - stacked).abs().max() > 1e-3  # b changes the output


@pytest.mark.parametrize("kind", ["product", "generator"])
def test_weights_one_zero_give_exactly_the_first_adapter(kind):
    am, batch = _pair()
    am.add_weighted_adapter(["default", "b"], [1, 0], "first", combination_type=kind)
    for layer in _layers(am):
        assert torch.equal(layer.hamming["first"].weight, layer.hamming["default"].weight)
    with torch.no_grad():
        am.set_adapter("first")
        out = am(**batch).logits
        am.set_adapter("default")
        assert torch.equal(out, am(**batch).logits)


def test_the_combined_adapter_is_inactive_and_frozen_as_peft_adds_it():
    am, _ = _pair()
    am.add_weighted_adapter(["default", "b"], [0.5, 0.5], "ab")
    assert am.active_adapters == ["default"]
    assert not any(p.requires_grad for layer in _layers(am)
                   for p in layer.hamming["ab"].parameters())


def test_bad_calls_are_refused_before_the_model_changes():
    am, _ = _pair()
    am.add_adapter("input", HammingConfig(target_modules=["query", "value"], orders=(1, 2),
                                          blocks=2, side="input"))
    am.add_adapter("circuit", HammingConfig(target_modules=["query", "value"], orders=(1, 2),
                                            blocks=2, parametrization="circuit"))
    am.add_adapter("phys", physics.PhysicsConfig(target_modules=["key"], rank=2,
                                                 grid="sequence"))
    state = {k: v.clone() for k, v in am.state_dict().items()}
    with pytest.raises(ValueError, match=r"combination_type='linear' is not valid; valid: "
                                         r"\['product', 'generator'\]"):
        am.add_weighted_adapter(["default", "b"], [1, 1], "x", combination_type="linear")
    with pytest.raises(ValueError, match=r"weights=\[1\] is not valid: give 2 finite numbers"):
        am.add_weighted_adapter(["default", "b"], [1], "x")
    with pytest.raises(ValueError, match=r"weights=\[1, nan\] is not valid"):
        am.add_weighted_adapter(["default", "b"], [1, float("nan")], "x")
    with pytest.raises(ValueError, match=r"adapters=\['default', 'nope'\] is not valid"):
        am.add_weighted_adapter(["default", "nope"], [1, 1], "x")
    with pytest.raises(ValueError, match="adapter_name='b' already exists"):
        am.add_weighted_adapter(["default", "b"], [1, 1], "b")
    with pytest.raises(ValueError, match=r"'default' and 'input' have different layouts "
                                         r"\(side='output' vs 'input'\)"):
        am.add_weighted_adapter(["default", "input"], [1, 1], "x")
    with pytest.raises(ValueError, match=r"'circuit' has parametrization='circuit'; only "
                                         r"\['cayley', 'expm'\] adapters combine"):
        am.add_weighted_adapter(["default", "circuit"], [1, 1], "x")
    with pytest.raises(TypeError, match="'phys' is a PhysicsConfig adapter; "
                                        "add_weighted_adapter combines Hamming adapters"):
        am.add_weighted_adapter(["default", "phys"], [1, 1], "x")
    assert "x" not in am.peft_config
    after = am.state_dict()
    assert after.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(after[k], v), k
