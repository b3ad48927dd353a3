r"""Givens decomposition: an orthogonal matrix as a circuit of nearest-neighbour RBS gates.

Any ``Q`` in SO(n) is the weight-1 block of a circuit of ``n(n-1)/2`` RBS gates on adjacent
wires (the pyramid's gate count).  Left-multiplying ``Q`` by rotations ``R`` on rows
``(i, i+1)`` -- the gate matrix :math:`\begin{pmatrix} c & s \\ -s & c\end{pmatrix}` with
``φ = atan2(Q[i+1, j], Q[i, j])`` -- zeroes the entries below the diagonal column by column,
bottom up, until ``R_K ⋯ R_1 Q = I`` (the diagonal ends positive because ``det Q = +1``).
So ``Q = R_1^T ⋯ R_K^T``: the circuit applies ``R_K^T`` first and ``R_1^T`` last, and
``R(φ)^T = R(-φ)``.  Adjacent RBS gates are compound-exact, so the circuit's weight-k
block is ``C_k(Q)`` for every k (:mod:`~qiadapters.circuits.compound`).
"""
from __future__ import annotations

import math

import torch

from .circuit import Circuit

__all__ = ["givens_circuit"]


def givens_circuit(Q: torch.Tensor, atol: float = 1e-8) -> tuple[Circuit, torch.Tensor]:
    """``(circuit, theta)`` with ``circuit.hamming_block(theta, 1) == Q`` for ``Q: (n, n)`` in
    SO(n) (float64 angles; raises ValueError if ``Q`` is not orthogonal with det +1)."""
    if not isinstance(Q, torch.Tensor) or Q.ndim != 2 or Q.shape[0] != Q.shape[1] \
            or Q.shape[0] < 2:
        got = tuple(Q.shape) if isinstance(Q, torch.Tensor) else type(Q).__name__
        raise ValueError(f"Q has shape {got}; expected a square (n, n) matrix with n >= 2")
    A = Q.detach().to(torch.float64, copy=True).cpu()
    n = A.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    err = (A.T @ A - eye).abs().max().item()
    if err > atol:
        raise ValueError(f"Q is not orthogonal (max |Q^T Q - I| = {err:.1e} > atol={atol:g})")
    if torch.linalg.det(A).item() < 0:
        raise ValueError("Q has det -1; RBS circuits reach SO(n) only (det +1); flip the sign "
                         "of one row to export it")
    rotations = []  # (i, phi) of R_1 .. R_K
    for j in range(n - 1):
        for i in range(n - 2, j - 1, -1):
            a, b = A[i, j].item(), A[i + 1, j].item()
            if b == 0.0 and a >= 0.0:
                continue  # already zero, nothing to rotate
            phi = math.atan2(b, a)
            c, s = math.cos(phi), math.sin(phi)
            top, bottom = A[i].clone(), A[i + 1].clone()
            A[i], A[i + 1] = c * top + s * bottom, -s * top + c * bottom
            rotations.append((i, phi))
    wires = [(i, i + 1) for i, _ in reversed(rotations)]
    theta = torch.tensor([-phi for _, phi in reversed(rotations)], dtype=torch.float64)
    if not wires:  # Q = I: one idle gate keeps the circuit well formed
        wires, theta = [(0, 1)], torch.zeros(1, dtype=torch.float64)
    return Circuit.from_gates(n, wires, gate="rbs"), theta
