"""Hamming-weight-preserving circuits: gates, layouts, the symbolic Circuit, Hamming-weight
bases, compound matrices, compiled batched ops and the PennyLane bridge."""
from .basis import block_dim, hamming_basis, max_qubits
from .circuit import Circuit
from .compound import compound, compound_by_minors
from .gates import FBS, GATES, RBS
from .layouts import LAYOUTS

__all__ = ["Circuit", "RBS", "FBS", "GATES", "LAYOUTS", "hamming_basis", "block_dim",
           "max_qubits", "compound", "compound_by_minors"]
