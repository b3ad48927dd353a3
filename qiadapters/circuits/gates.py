r"""Hamming-weight-preserving two-qubit gates.

Each gate kind is one small frozen class, PennyLane style, and the ONE place its matrix is
defined: its docstring shows the matrix, its static :meth:`~Gate.compute_matrix` computes it
and :meth:`~Gate.pennylane_ops` names the PennyLane operations it equals.  Everything else
(exact simulation, compiled index tables, the validity checks) reads the matrix from there.

The contract every gate kind keeps: on wires ``(i, j)`` it is the identity on
:math:`|0_i 0_j\rangle` and :math:`|1_i 1_j\rangle`, leaves every other qubit alone and acts
on the one-excitation pair :math:`(|1_i 0_j\rangle, |0_i 1_j\rangle)` -- the basis
:math:`(e_i, e_j)` -- by the 2x2 matrix ``compute_matrix(theta, parity)``, where ``parity`` is
the number of occupied qubits strictly between ``i`` and ``j``, mod 2 (gates that ignore the
other qubits ignore it).  ``compute_matrix(theta, parity)[a, b]`` is the amplitude of local
state ``a`` in the image of local state ``b`` (column convention, as ``qml.matrix``).

A gate instance records the two wires it acts on (in the order that defines its matrix) and
the index of the circuit parameter it uses.  New gate kinds subclass :class:`Gate` and register
in :data:`GATES`; :func:`~qiadapters.circuits.validity.assert_valid_gate` checks them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable

import torch


def givens(theta: torch.Tensor, sign=1) -> torch.Tensor:
    r"""``[[cos t, sign sin t], [-sign sin t, cos t]]``; ``theta`` and ``sign`` (an int or a
    tensor of signs) broadcast -> ``(..., 2, 2)``."""
    c, s = torch.cos(theta), torch.sin(theta)
    if not isinstance(sign, int) or sign != 1:
        s = s * sign
        c = c.expand_as(s)
    return torch.stack([c, s, -s, c], -1).unflatten(-1, (2, 2))


@dataclass(frozen=True)
class Gate:
    """Base class of the two-qubit gate kinds: ``wires = (i, j)`` and the parameter index."""

    wires: tuple[int, int]
    param: int

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: True if a circuit of this kind obeys ``block_k == C_k(block_1)`` on any wires (a
    #: fermionic gate); False if only on adjacent wires.
    fermionic: ClassVar[bool] = False

    @staticmethod
    def compute_matrix(theta: torch.Tensor, parity=0) -> torch.Tensor:
        """The 2x2 matrix in the basis ``(e_i, e_j)``: ``theta: (...)``, ``parity`` an int or an
        integer tensor broadcasting against ``theta`` -> ``(..., 2, 2)``."""
        raise NotImplementedError

    def pennylane_ops(self, theta) -> list:
        """PennyLane operations equal to this gate (``theta`` a scalar, any interface)."""
        raise NotImplementedError

    def between(self) -> range:
        """The wires strictly between ``i`` and ``j``."""
        i, j = sorted(self.wires)
        return range(i + 1, j)

    def parity(self, occupied: Iterable[int]) -> int:
        """Number of wires of ``occupied`` strictly between ``i`` and ``j``, mod 2."""
        span = self.between()
        return sum(1 for w in occupied if w in span) % 2

    @property
    def compound_exact(self) -> bool:
        """Whether circuits of this gate obey the compound identity: fermionic or adjacent."""
        return self.fermionic or abs(self.wires[0] - self.wires[1]) == 1


@dataclass(frozen=True)
class RBS(Gate):
    r"""Reconfigurable beam splitter on wires ``(i, j)``.

    Acts only on :math:`\mathrm{span}(|1_i 0_j\rangle, |0_i 1_j\rangle)`; in the basis
    :math:`(e_i, e_j)` of that span

    .. math::
        \mathrm{RBS}(\theta) = \begin{pmatrix} \cos\theta & \sin\theta \\
                                              -\sin\theta & \cos\theta \end{pmatrix},

    and the identity on :math:`|0_i 0_j\rangle, |1_i 1_j\rangle`.  It equals
    ``qml.SingleExcitation(2 * theta, wires=[i, j])`` exactly.  The occupation of the
    other qubits is ignored (``parity`` is accepted and unused), so for non-adjacent wires
    the weight-k block of an RBS circuit is orthogonal but is *not* the k-th compound of its
    weight-1 block.

    **Details:** wires 2, parameters 1, Hamming weight preserved, real orthogonal.
    """

    name: ClassVar[str] = "rbs"
    label: ClassVar[str] = "R"

    @staticmethod
    def compute_matrix(theta: torch.Tensor, parity=0) -> torch.Tensor:
        """``[[cos, sin], [-sin, cos]]``: ``theta: (...)`` -> ``(..., 2, 2)``; ``parity`` unused."""
        return givens(theta)

    def pennylane_ops(self, theta) -> list:
        import pennylane as qml

        return [qml.SingleExcitation(2 * theta, wires=list(self.wires))]


@dataclass(frozen=True)
class FBS(Gate):
    r"""Fermionic beam splitter on wires ``(i, j)``.

    The RBS with ``sin`` negated when an odd number of the qubits strictly between ``i``
    and ``j`` are occupied: on the pair :math:`(e_i, e_j)` with parity
    :math:`p = \sum_{\min(i,j) < w < \max(i,j)} x_w \bmod 2`

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
    fermionic: ClassVar[bool] = True

    @staticmethod
    def compute_matrix(theta: torch.Tensor, parity=0) -> torch.Tensor:
        """``[[cos, (-1)^p sin], [-(-1)^p sin, cos]]``: ``theta``, ``parity`` broadcast ->
        ``(..., 2, 2)``."""
        return givens(theta, 1 - 2 * (parity % 2))

    def pennylane_ops(self, theta) -> list:
        import pennylane as qml

        i = self.wires[0]
        flips = lambda: [qml.CZ(wires=[w, i]) for w in self.between()]  # noqa: E731
        return flips() + [qml.SingleExcitation(2 * theta, wires=list(self.wires))] + flips()


#: Registry of gate kinds by name.
GATES: dict[str, type[Gate]] = {"rbs": RBS, "fbs": FBS}
