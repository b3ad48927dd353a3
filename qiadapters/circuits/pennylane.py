"""Bridge to PennyLane: the independent reference for every circuit.

PennyLane is imported lazily; install it with ``pip install "qiadapters[pennylane]"``.
"""
from __future__ import annotations

import torch

from .basis import hamming_basis, state_index


def _qml():
    try:
        import pennylane as qml
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("qiadapters.pennylane needs PennyLane: pip install "
                          "'qiadapters[pennylane]' (or pip install pennylane)") from err
    return qml


def to_qfunc(circuit, theta):
    """Apply ``circuit`` with angles ``theta: (n_params,)`` as PennyLane operations.

    Call inside a QNode or a ``qml.matrix`` / tape context; ``theta`` may be a torch tensor
    (gradients flow through PennyLane's torch interface).
    """
    _qml()
    circuit.check_theta(theta)
    for gate in circuit.gates:
        gate.pennylane_ops(theta[gate.param])


def matrix(circuit, theta) -> torch.Tensor:
    """The full ``2^n x 2^n`` unitary from ``qml.matrix`` (wire 0 most significant)."""
    qml = _qml()
    wires = list(range(circuit.n_qubits))
    return qml.matrix(lambda: to_qfunc(circuit, theta), wire_order=wires)()


def hamming_block(circuit, theta, k: int) -> torch.Tensor:
    """Weight-k block of PennyLane's unitary, rows/columns in lexicographic subset order."""
    idx = [state_index(circuit.n_qubits, s) for s in hamming_basis(circuit.n_qubits, k)]
    U = torch.as_tensor(matrix(circuit, theta))
    idx = torch.tensor(idx, dtype=torch.long)
    return U[idx][:, idx].real


def state_columns(circuit, theta, k: int) -> torch.Tensor:
    """Weight-k block column by column: ``default.qubit`` state vectors of each basis input."""
    qml = _qml()
    n = circuit.n_qubits
    dev = qml.device("default.qubit", wires=n)
    basis = hamming_basis(n, k)
    idx = torch.tensor([state_index(n, s) for s in basis], dtype=torch.long)

    @qml.qnode(dev, interface="torch")
    def run(bits):
        qml.BasisState(bits, wires=range(n))
        to_qfunc(circuit, theta)
        return qml.state()

    cols = []
    for s in basis:
        bits = torch.zeros(n, dtype=torch.long)
        bits[list(s)] = 1
        cols.append(torch.as_tensor(run(bits))[idx].real)
    return torch.stack(cols, -1)
