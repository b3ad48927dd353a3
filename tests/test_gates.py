"""Every registered gate kind against its own contract (PennyLane the reference), and the
contract checker against gates that break it: table-driven, a new gate adds a registry entry."""
import pytest
import torch

import qiadapters as qa
from qiadapters.circuits import validity
from qiadapters.circuits.gates import FBS, RBS, Gate, givens


@pytest.mark.parametrize("name", sorted(qa.GATES))
@pytest.mark.parametrize("check", sorted(validity.CHECKS))
def test_registered_gate_passes_check(name, check):
    validity.CHECKS[check](qa.GATES[name], registry=qa.GATES, max_n=5 if check == "pennylane" else 4,
                           seed=3)


def test_assert_valid_gate_runs_every_check():
    for cls in qa.GATES.values():
        validity.assert_valid_gate(cls)


# Gates that break one promise each; the checker must name it.
class Unregistered(RBS):
    __doc__ = RBS.__doc__
    name = "unregistered"


class NoMatrixDoc(RBS):
    """A gate that does not show its matrix."""


class ParityBlind(FBS):
    """Claims FBS's PennyLane ops but ignores the parity (an RBS matrix)."""
    __doc__ = FBS.__doc__

    @staticmethod
    def compute_matrix(theta, parity=0):
        return givens(theta)


class Transposed(RBS):
    __doc__ = RBS.__doc__

    @staticmethod
    def compute_matrix(theta, parity=0):
        return givens(theta, -1)


class Offset(RBS):
    __doc__ = RBS.__doc__

    @staticmethod
    def compute_matrix(theta, parity=0):
        return givens(theta + 0.1)


class ClaimsFermionic(RBS):
    __doc__ = RBS.__doc__
    fermionic = True


@pytest.mark.parametrize("cls,match", [
    (Unregistered, "not registered"),
    (NoMatrixDoc, "docstring must show its matrix"),
    (Offset, "is not the identity"),
    (Transposed, "differs from"),
    (ParityBlind, r"on wires \(0, 2\) of 3 qubits differs from"),
    (ClaimsFermionic, "claims the compound identity"),
])
def test_checker_catches_broken_gates(cls, match):
    registry = {} if cls is Unregistered else {cls.name: cls}
    with pytest.raises(AssertionError, match=match):
        validity.assert_valid_gate(cls, registry=registry, max_n=3)


def test_full_matrix_follows_compute_matrix_at_every_parity():
    """FBS on (0, 3) of 4 qubits: the sin sign flips with the occupation of wires 1, 2."""
    theta = torch.tensor(0.7, dtype=torch.float64)
    M = validity.full_matrix(FBS((0, 3), 0), theta, 4)
    c, s = torch.cos(theta), torch.sin(theta)
    for mid, sign in [(0b00, 1), (0b01, -1), (0b10, -1), (0b11, 1)]:
        x, y = 0b1000 | mid << 1, 0b0001 | mid << 1  # |1_0 .. 0_3>, |0_0 .. 1_3>
        torch.testing.assert_close(M[[x, y]][:, [x, y]],
                                   torch.stack([torch.stack([c, sign * s]),
                                                torch.stack([-sign * s, c])]))


def test_compute_matrix_broadcasts_parity():
    theta = torch.randn(3, 1, dtype=torch.float64)
    parity = torch.tensor([0, 1, 1, 0])
    M = FBS.compute_matrix(theta, parity)
    assert M.shape == (3, 4, 2, 2)
    torch.testing.assert_close(M[:, 1], FBS.compute_matrix(theta[:, 0], 1))
    torch.testing.assert_close(M[:, 0], RBS.compute_matrix(theta[:, 0]))


def test_gate_base_is_abstract_and_parity_counts_between():
    with pytest.raises(NotImplementedError):
        Gate.compute_matrix(torch.zeros(()))
    g = FBS((4, 1), 0)
    assert list(g.between()) == [2, 3] and g.parity({0, 2, 3, 5}) == 0 and g.parity({2}) == 1
    assert RBS((1, 2), 0).compound_exact and not RBS((1, 3), 0).compound_exact
    assert FBS((1, 3), 0).compound_exact
