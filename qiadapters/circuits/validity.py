r"""The gate contract, as checks every gate kind must pass (``qml.ops.functions.assert_valid`` style).

:func:`assert_valid_gate` runs every check in :data:`CHECKS` on one gate class; the test suite
runs it over every entry of :data:`~qiadapters.circuits.gates.GATES`, so a new gate kind adds a
registry entry, not tests::

    from qiadapters.circuits import GATES
    from qiadapters.circuits.validity import assert_valid_gate
    for cls in GATES.values():
        assert_valid_gate(cls)

A gate kind must: be registered under its ``name``; show its matrix in its docstring; give
``compute_matrix(0, parity) = I`` and an orthogonal matrix for every angle and parity,
batched; equal, on the full ``2^n``-dimensional space, the PennyLane operations it claims
(``qml.matrix`` of :meth:`~qiadapters.circuits.gates.Gate.pennylane_ops`) on adjacent and
non-adjacent wires in both orders, every other qubit occupied or not; preserve Hamming
weight; give a circuit whose exact simulation (:meth:`~qiadapters.Circuit.hamming_block`)
agrees with PennyLane; keep its compound-identity claim (``fermionic``); and be an immutable,
hashable, picklable, copyable value.  PennyLane is needed (``pip install pennylane``).
"""
from __future__ import annotations

import copy
import pickle
from itertools import permutations
from typing import Callable, Mapping

import torch

from .basis import hamming_basis, state_index
from .circuit import Circuit
from .compound import compound
from .gates import GATES

DTYPE = torch.float64
ATOL = 1e-12


def _close(got, want, what: str, atol: float = ATOL) -> None:
    err = (torch.as_tensor(got) - torch.as_tensor(want)).abs().max().item()
    assert err <= atol, f"{what}: max deviation {err:.2e} > {atol:.0e}"


def _angles(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, dtype=DTYPE, generator=torch.Generator().manual_seed(seed)) * 2


def _wire_pairs(max_n: int):
    """Every ordered wire pair ``(i, j)`` on ``n = 2..max_n`` qubits: adjacent and not."""
    return [(n, pair) for n in range(2, max_n + 1) for pair in permutations(range(n), 2)]


def full_matrix(gate, theta: torch.Tensor, n: int) -> torch.Tensor:
    """``(2^n, 2^n)`` matrix of ``gate`` on ``n`` qubits (wire 0 the most significant bit),
    assembled from its class's ``compute_matrix``: the identity where qubits ``i`` and ``j``
    agree, the 2x2 matrix at the state's parity on each one-excitation pair."""
    i, j = gate.wires
    out = torch.zeros(2 ** n, 2 ** n, dtype=theta.dtype)
    for x in range(2 ** n):
        occupied = [w for w in range(n) if x >> (n - 1 - w) & 1]
        if (i in occupied) == (j in occupied):
            out[x, x] = 1
            continue
        a = 0 if i in occupied else 1  # local state: e_i (1_i 0_j) or e_j (0_i 1_j)
        y = x ^ (1 << (n - 1 - i)) ^ (1 << (n - 1 - j))
        M = gate.compute_matrix(theta, gate.parity(occupied))
        out[x, x], out[y, x] = M[a, a], M[1 - a, a]
    return out


def pennylane_matrix(gate, theta: torch.Tensor, n: int) -> torch.Tensor:
    """``qml.matrix`` of the gate's :meth:`pennylane_ops` on wires ``0..n-1`` (real part)."""
    import pennylane as qml

    return torch.as_tensor(qml.matrix(lambda: gate.pennylane_ops(theta),
                                      wire_order=list(range(n)))()).real


# ---------------------------------------------------------------------------- checks
def check_registered(cls, registry: Mapping[str, type], **_) -> None:
    assert registry.get(cls.name) is cls, (f"{cls.__name__} is not registered as "
                                           f"{cls.name!r}; registry: {list(registry)}")


def check_docstring(cls, **_) -> None:
    doc = cls.__doc__ or ""
    for piece in ("pmatrix", r"\cos\theta", r"\sin\theta"):
        assert piece in doc, f"{cls.__name__}'s docstring must show its matrix (no {piece!r})"


def check_identity_and_orthogonal(cls, seed: int = 0, **_) -> None:
    theta = _angles(6, seed).reshape(3, 2)
    for parity in (0, 1):
        _close(cls.compute_matrix(torch.zeros((), dtype=DTYPE), parity), torch.eye(2, dtype=DTYPE),
               f"{cls.__name__}.compute_matrix(0, parity={parity}) is not the identity")
        M = cls.compute_matrix(theta, parity)
        assert M.shape == (3, 2, 2, 2), f"compute_matrix((3, 2)) has shape {tuple(M.shape)}"
        _close(M @ M.transpose(-1, -2), torch.eye(2, dtype=DTYPE).expand_as(M),
               f"{cls.__name__}.compute_matrix(theta, parity={parity}) is not orthogonal")


def check_pennylane(cls, max_n: int = 4, seed: int = 0, **_) -> None:
    for t, (n, wires) in enumerate(_wire_pairs(max_n)):
        gate, theta = cls(wires, 0), _angles(1, seed + t)[0]
        ref = pennylane_matrix(gate, theta, n)
        _close(full_matrix(gate, theta, n), ref,
               f"{cls.__name__} on wires {wires} of {n} qubits differs from {gate.pennylane_ops(theta)}")
        weight = torch.tensor([bin(x).count("1") for x in range(2 ** n)])
        assert ref[weight[:, None] != weight[None, :]].abs().max() < ATOL, (
            f"{cls.__name__}'s PennyLane ops on wires {wires} do not preserve Hamming weight")


def check_simulation(cls, max_n: int = 4, seed: int = 0, **_) -> None:
    """A two-gate circuit's exact blocks against PennyLane, for every weight k."""
    for t, (n, wires) in enumerate(_wire_pairs(max_n)):
        c = Circuit(n, [cls(wires, 0), cls((wires[1], wires[0]), 1)])
        theta = _angles(2, seed + t)
        full = pennylane_matrix(c.gates[1], theta[1], n) @ pennylane_matrix(c.gates[0], theta[0], n)
        for k in range(n + 1):
            idx = torch.tensor([state_index(n, s) for s in hamming_basis(n, k)])
            _close(c.hamming_block(theta, k), full[idx][:, idx],
                   f"weight-{k} block of {c.gates} differs from PennyLane")


def check_compound_claim(cls, max_n: int = 4, seed: int = 0, **_) -> None:
    """``fermionic`` kinds obey ``block_k == C_k(block_1)`` on any wires, others on adjacent."""
    for t, (n, wires) in enumerate(_wire_pairs(max_n)):
        if not cls(wires, 0).compound_exact:
            continue
        c = Circuit(n, [cls(wires, 0)])
        theta = _angles(1, seed + t)
        U = c.hamming_block(theta, 1)
        for k in range(n + 1):
            _close(c.hamming_block(theta, k), compound(U, k),
                   f"{cls.__name__} on wires {wires} claims the compound identity; weight {k}")


def check_value_semantics(cls, **_) -> None:
    gate = cls((0, 2), 1)
    for other in (pickle.loads(pickle.dumps(gate)), copy.copy(gate), copy.deepcopy(gate),
                  cls((0, 2), 1)):
        assert other == gate and hash(other) == hash(gate), f"{gate!r} != its copy {other!r}"
    assert gate != cls((2, 0), 1) and gate != cls((0, 2), 0), f"{gate!r} equals another gate"
    try:
        gate.wires = (1, 2)
    except AttributeError:
        return
    raise AssertionError(f"{cls.__name__} instances must be immutable")


#: Every check by name; :func:`assert_valid_gate` runs them all.
CHECKS: dict[str, Callable[..., None]] = {
    "registered": check_registered,
    "docstring": check_docstring,
    "identity_orthogonal": check_identity_and_orthogonal,
    "pennylane": check_pennylane,
    "simulation": check_simulation,
    "compound_claim": check_compound_claim,
    "value_semantics": check_value_semantics,
}


def assert_valid_gate(cls: type, *, registry: Mapping[str, type] = GATES, max_n: int = 4,
                      seed: int = 0) -> None:
    """Run every check of :data:`CHECKS` on the gate class ``cls`` (``max_n`` qubits at most);
    raise ``AssertionError`` naming the first broken promise."""
    for check in CHECKS.values():
        check(cls, registry=registry, max_n=max_n, seed=seed)
