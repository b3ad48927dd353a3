"""Hamming-weight-preserving circuits: gates, layouts, the symbolic Circuit, Hamming-weight
bases, compound matrices, compiled batched ops, the gate contract and the PennyLane bridge."""
from .basis import block_dim, hamming_basis, max_qubits
from .circuit import Circuit
from .compound import compound, compound_by_minors
from .gates import FBS, GATES, RBS
from .layouts import LAYOUTS
from .validity import assert_valid_gate

__all__ = ["Circuit", "RBS", "FBS", "GATES", "LAYOUTS", "hamming_basis", "block_dim",
           "max_qubits", "compound", "compound_by_minors", "assert_valid_gate"]
