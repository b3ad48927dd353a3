"""PennyLane, both ways: circuits checked against PennyLane, and trained adapters exported as
PennyLane circuits.

The reference functions (:func:`to_qfunc`, :func:`matrix`, :func:`hamming_block`,
:func:`state_columns`) come from :mod:`qiadapters.circuits.pennylane`.  :func:`export` turns
every diagonal block of a trained :class:`~qiadapters.HammingAdapter` into a circuit of RBS /
FBS gates whose weight-k blocks are the trained ones:

* ``parametrization="circuit"`` (``U = V(a) V(b)^T``): directly from the angles -- ``V(b)^T``
  is ``V``'s gates in reverse order with negated angles (each gate is a rotation), then
  ``V(a)``;
* ``"cayley"`` / ``"expm"``: ``Q`` in SO(n) by a Givens decomposition into ``n(n-1)/2``
  adjacent RBS gates (:func:`~qiadapters.circuits.givens.givens_circuit`), whose weight-k
  blocks are the compounds ``C_k(Q)``.

PennyLane itself is imported only when a function that simulates is called.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .adapters.layer import AdapterLayer
from .circuits import Circuit
from .circuits.givens import givens_circuit
from .circuits.pennylane import hamming_block, matrix, state_columns, to_qfunc

__all__ = ["to_qfunc", "matrix", "hamming_block", "state_columns", "export", "ExportedBlock"]


class ExportedBlock(NamedTuple):
    """One diagonal block of an exported adapter: ``circuit`` with angles ``theta``
    (float64) whose weight-k block equals the adapter's ``B_{block,k}`` for ``k in orders``."""

    block: int
    circuit: Circuit
    theta: torch.Tensor
    orders: tuple[int, ...]

    def qfunc(self):
        """A quantum function applying the circuit (call it inside a QNode or ``qml.matrix``)."""
        return lambda: to_qfunc(self.circuit, self.theta)


def _pair_circuit(circuit: Circuit, a: torch.Tensor, b: torch.Tensor) -> tuple[Circuit,
                                                                                 torch.Tensor]:
    """The circuit of ``V(a) V(b)^T``: ``V(b)``'s gates reversed with ``-b``, then ``V(a)``."""
    p = circuit.n_params
    gates = circuit.gates
    wires = [g.wires for g in reversed(gates)] + [g.wires for g in gates]
    params = [g.param for g in reversed(gates)] + [p + g.param for g in gates]
    combined = Circuit.from_gates(circuit.n_qubits, wires, gate=gates[0].name, params=params)
    return combined, torch.cat([-b, a]).to(torch.float64)


@torch.no_grad()
def export(layer: AdapterLayer, adapter_name: str = "default") -> list[ExportedBlock]:
    """Every diagonal block of Hamming adapter ``adapter_name`` of ``layer`` as a circuit
    (one :class:`ExportedBlock` per block, ``r`` in all; shared blocks repeat one circuit)."""
    rotations = getattr(layer, "hamming", None)
    if rotations is None:
        raise TypeError(f"export takes a Hamming adapter layer (e.g. qiadapters.HammingAdapter), "
                        f"got {type(layer).__name__}")
    if adapter_name not in rotations:
        raise ValueError(f"adapter_name={adapter_name!r} is not on this layer; existing: "
                         f"{list(rotations)}")
    rot = rotations[adapter_name]
    lay = rot.block_layout
    out = []
    if rot.name == "circuit":
        for i in range(lay.blocks):
            c = 0 if rot.share_blocks else i
            circuit, theta = _pair_circuit(rot.circuit, rot.theta[c], rot.theta_mirror[c])
            out.append(ExportedBlock(i, circuit, theta, lay.orders))
    else:
        Q = rot.orthogonal(torch.float64)
        for i in range(lay.blocks):
            circuit, theta = givens_circuit(Q[0 if rot.share_blocks else i])
            out.append(ExportedBlock(i, circuit, theta, lay.orders))
    return out
