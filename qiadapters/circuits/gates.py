r"""Hamming-weight-preserving two-qubit gates.

Each gate is one small frozen class, PennyLane style: its matrix in the docstring, a static
``compute_matrix`` and its PennyLane equivalent.  A gate instance records the two wires it acts
on (in the order that defines its matrix) and the index of the circuit parameter it uses.
New gate kinds register in :data:`GATES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch


@dataclass(frozen=True)
class RBS:
    r"""Reconfigurable beam splitter on wires ``(i, j)``.

    Acts only on :math:`\mathrm{span}(|1_i 0_j\rangle, |0_i 1_j\rangle)`; in the basis
    :math:`(e_i, e_j)` of that span

    .. math::
        \mathrm{RBS}(\theta) = \begin{pmatrix} \cos\theta & \sin\theta \\
                                              -\sin\theta & \cos\theta \end{pmatrix},

    and the identity on :math:`|0_i 0_j\rangle, |1_i 1_j\rangle`.  It equals
    ``qml.SingleExcitation(2 * theta, wires=[i, j])`` exactly.  The occupation of the
    other qubits is ignored, so for non-adjacent wires the weight-k block of an RBS circuit
    is orthogonal but is *not* the k-th compound of its weight-1 block.

    **Details:** wires 2, parameters 1, Hamming weight preserved, real orthogonal.
    """

    wires: tuple[int, int]
    param: int

    name: ClassVar[str] = "rbs"
    label: ClassVar[str] = "R"

    @staticmethod
    def compute_matrix(theta: torch.Tensor) -> torch.Tensor:
        """The 2x2 matrix in the basis ``(e_i, e_j)``; ``theta: (...)`` -> ``(..., 2, 2)``."""
        c, s = torch.cos(theta), torch.sin(theta)
        return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)

    def sign(self, occupied: Sequence[int] | frozenset[int]) -> int:
        """Sign multiplying ``sin`` for a basis state with ones on ``occupied``: always +1."""
        return 1

    def pennylane_ops(self, theta):
        """PennyLane operations equal to this gate (``theta`` a scalar, any interface)."""
        import pennylane as qml

        return [qml.SingleExcitation(2 * theta, wires=list(self.wires))]


@dataclass(frozen=True)
class FBS(RBS):
    r"""Fermionic beam splitter on wires ``(i, j)``.

    The RBS with ``sin`` negated when an odd number of the qubits strictly between ``i``
    and ``j`` are occupied: on the pair :math:`(e_i, e_j)` with parity
    :math:`p = \sum_{\min(i,j) < w < \max(i,j)} x_w`

    .. math::
        \mathrm{FBS}(\theta) = \begin{pmatrix} \cos\theta & (-1)^p \sin\theta \\
                                              -(-1)^p \sin\theta & \cos\theta \end{pmatrix}.

    This is the Jordan-Wigner image of the Givens rotation
    :math:`\exp(\theta (a_j^\dagger a_i - a_i^\dagger a_j))`, so for any connectivity the
    weight-k block of an FBS circuit is the k-th compound of its weight-1 block.  In
    PennyLane it is ``CZ(w, i)`` for every ``w`` between the wires, then
    ``SingleExcitation(2 theta, [i, j])``, then the same CZs again (``Z_i`` anticommutes
    with the excitation generator, so each occupied ``w`` flips the angle's sign).

    **Details:** wires 2 (plus the parity of the wires between), parameters 1.
    """

    name: ClassVar[str] = "fbs"
    label: ClassVar[str] = "F"

    def between(self) -> range:
        i, j = sorted(self.wires)
        return range(i + 1, j)

    def sign(self, occupied: Sequence[int] | frozenset[int]) -> int:
        parity = sum(1 for w in self.between() if w in occupied) % 2
        return -1 if parity else 1

    def pennylane_ops(self, theta):
        import pennylane as qml

        i = self.wires[0]
        flips = lambda: [qml.CZ(wires=[w, i]) for w in self.between()]  # noqa: E731
        return flips() + [qml.SingleExcitation(2 * theta, wires=list(self.wires))] + flips()


#: Registry of gate kinds by name.
GATES: dict[str, type[RBS]] = {"rbs": RBS, "fbs": FBS}
