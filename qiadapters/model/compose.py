r"""Combining Hamming adapters into one: :func:`add_weighted_adapter`.

peft's ``add_weighted_adapter`` sums LoRA updates (task arithmetic).  A sum of orthogonal
maps is not orthogonal, but two combinations of orthogonal adapters are, exactly:

* ``"product"``: :math:`Q = Q_1(w_1) Q_2(w_2) \cdots`, with :math:`Q_i(w)` the adapter's
  weight-1 block with its generator scaled by ``w`` (``cayley(w S_i)`` / ``exp(w S_i)``; for
  ``expm`` that is the matrix power :math:`Q_i^w`).  The blocks of ``D`` are compounds of
  ``Q`` and :math:`C_k(AB) = C_k(A) C_k(B)` (Cauchy--Binet), so with unit weights
  ``D = D_1 D_2 \cdots``: the adapters applied one after the other, as
  ``set_adapter([a, b])`` stacks them.  The product is written back as one adapter of the
  same layout: its generator is the inverse map of ``Q`` (Cayley is its own inverse;
  ``expm`` takes the principal logarithm), which exists unless ``Q`` rotates some plane by
  exactly :math:`\pi`.
* ``"generator"``: :math:`S = \sum_i w_i S_i`, the weighted sum of the skew-symmetric
  generators (the adapters' parameters: ``S`` is linear in them), mapped by the same
  Cayley / exp.  Orthogonal for any weights.

Weights ``(1, 0, ...)`` give exactly the first adapter (its parameters, bit for bit).  Only
``cayley`` and ``expm`` adapters combine (a circuit's angles do not compose), and only
adapters of one layout on the same layers (:func:`~qiadapters.model.hotswap.layout_difference`).
The combined adapter has no ``modules_to_save`` copies: it uses the original modules.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from ..adapters.hamming.config import HammingConfig
from ..adapters.hamming.layer import HammingAdapter
from ..adapters.hamming.parametrizations import Cayley, Expm, SkewParametrization
from .hotswap import layout_difference

__all__ = ["add_weighted_adapter", "COMBINATIONS", "generator_of"]

#: The ``combination_type`` values of :func:`add_weighted_adapter`.
COMBINATIONS = ("product", "generator")
#: The parametrizations whose adapters combine (a skew generator per block).
COMBINABLE = ("cayley", "expm")


def _cayley_inverse(Q: torch.Tensor) -> torch.Tensor:
    """The skew ``S`` with ``Q = (I - S)(I + S)^{-1}``: the Cayley map is its own inverse,
    ``S = (I - Q)(I + Q)^{-1}``; ValueError when ``I + Q`` is singular (a rotation by pi)."""
    eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
    smallest = torch.linalg.svdvals(eye + Q).min()
    if smallest < 1e-8:
        raise ValueError(f"the product has a rotation by pi (smallest singular value of I + Q "
                         f"is {float(smallest):.1e}): it is no Cayley transform of a skew "
                         f"matrix; use combination_type='generator' or smaller weights")
    S = torch.linalg.solve(eye + Q, eye - Q)
    return (S - S.transpose(-1, -2)) / 2


def _log_orthogonal(Q: torch.Tensor) -> torch.Tensor:
    r"""The principal logarithm of a special orthogonal ``Q``: with ``Q = (I - A)(I + A)^{-1}``
    (:func:`_cayley_inverse`) and the Hermitian :math:`-iA = V \operatorname{diag}(\nu) V^H`,
    ``Q``'s eigenvalues are :math:`e^{-2i \arctan \nu}`, so
    :math:`\log Q = V \operatorname{diag}(-2i \arctan \nu) V^H` (real and skew)."""
    A = _cayley_inverse(Q)
    nu, V = torch.linalg.eigh(-1j * A.to(torch.complex128))
    L = (V * (-2j * torch.atan(nu)).unsqueeze(-2)) @ V.mH
    S = L.real.to(Q.dtype)
    return (S - S.transpose(-1, -2)) / 2


def generator_of(parametrization: str, Q: torch.Tensor) -> torch.Tensor:
    """The skew ``S`` whose ``parametrization`` (``"cayley"`` / ``"expm"``) map gives ``Q``."""
    return _cayley_inverse(Q) if parametrization == "cayley" else _log_orthogonal(Q)


def _weights_of(param: SkewParametrization, S: torch.Tensor) -> torch.Tensor:
    """The parameters ``(copies, n(n-1)/2)`` of a skew ``S: (copies, n, n)``."""
    return S[:, param.triu[0], param.triu[1]]


def _combined(params: list[SkewParametrization], weights: list[float], kind: str,
              parametrization: str) -> torch.Tensor:
    """The combined parameters of one layer, in float64 (module docstring)."""
    nonzero = [(p, w) for p, w in zip(params, weights) if w != 0]
    if len(nonzero) == 1 and nonzero[0][1] == 1:
        return nonzero[0][0].weight.detach().clone()  # exactly that adapter
    if kind == "generator":
        total = None
        for p, w in zip(params, weights):
            term = p.weight.detach().double() * w
            total = term if total is None else total + term
        return total
    cls = Cayley if parametrization == "cayley" else Expm
    Q = None
    for p, w in nonzero:
        Qi = cls.orthogonal_of_skew(p.skew(torch.float64, p.weight.detach().double() * w))
        Q = Qi.double() if Q is None else Q @ Qi.double()
    if Q is None:  # every weight 0: the identity
        return torch.zeros_like(params[0].weight, dtype=torch.float64)
    return _weights_of(params[0], generator_of(parametrization, Q))


def _check_weights(adapters: list[str], weights) -> list[float]:
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights={weights!r} must be a list of numbers, one per adapter "
                        f"({len(adapters)})")
    bad = [w for w in weights if isinstance(w, bool) or not isinstance(w, (int, float))
           or not math.isfinite(w)]
    if bad or len(weights) != len(adapters):
        raise ValueError(f"weights={list(weights)!r} is not valid: give {len(adapters)} finite "
                         f"numbers, one per adapter in adapters={adapters}")
    return [float(w) for w in weights]


def add_weighted_adapter(model, adapters: Sequence[str], weights: Sequence[float],
                         adapter_name: str, combination_type: str = "generator") -> None:
    """Add ``adapter_name``, a combination of the Hamming ``adapters`` (module docstring);
    not activated, as in peft.  Everything is checked and computed before the model changes.

    Args:
        model: an :class:`~qiadapters.AdapterModel`.
        adapters: names of existing Hamming adapters of one layout (cayley or expm).
        weights: one finite number per adapter.
        adapter_name: the new adapter's name.
        combination_type: ``"generator"`` (weighted sum of the skew generators) or
            ``"product"`` (product of the orthogonal maps, generators scaled by the weights).
    """
    if combination_type not in COMBINATIONS:
        raise ValueError(f"combination_type={combination_type!r} is not valid; valid: "
                         f"{list(COMBINATIONS)} (an orthogonal adapter is no sum of updates: "
                         f"peft's 'linear', 'cat', 'svd' do not apply)")
    if isinstance(adapters, str):
        raise TypeError(f"adapters={adapters!r} must be a list of adapter names")
    names = model._known(adapters, "adapters")
    weights = _check_weights(names, weights)
    model._check_new(adapter_name)
    first = model.peft_config[names[0]]
    for name in names:
        config = model.peft_config[name]
        if not isinstance(config, HammingConfig):
            raise TypeError(f"adapters: {name!r} is a {type(config).__name__} adapter; "
                            f"add_weighted_adapter combines Hamming adapters (HammingConfig)")
        if config.parametrization not in COMBINABLE:
            raise ValueError(f"adapters: {name!r} has parametrization="
                             f"{config.parametrization!r}; only {list(COMBINABLE)} adapters "
                             f"combine (their blocks are compounds of one Q = map(S))")
        diff = layout_difference(first, config)
        if diff:
            raise ValueError(f"adapters {names[0]!r} and {name!r} have different layouts "
                             f"({diff}); only adapters of one layout combine")
    layers = [(path, layer) for path, layer in model.adapter_layers()
              if isinstance(layer, HammingAdapter) and any(a in layer.hamming for a in names)]
    combined = {}
    for path, layer in layers:
        missing = [a for a in names if a not in layer.hamming]
        if missing:
            raise ValueError(f"adapters {missing} do not adapt {path!r}, which "
                             f"{[a for a in names if a in layer.hamming]} adapt; only "
                             f"adapters on the same layers combine")
        params = [layer.hamming[a] for a in names]
        combined[path] = _combined(params, weights, combination_type, first.parametrization)
    model.add_adapter(adapter_name, dataclasses.replace(first, modules_to_save=None))
    with torch.no_grad():
        for path, layer in layers:
            target = layer.hamming[adapter_name].weight
            target.copy_(combined[path].to(target.dtype))
