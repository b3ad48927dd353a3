"""The symbolic circuit: qubits, gates in order, parameters, layers."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .. import checks
from .gates import GATES, Gate
from .layouts import LAYOUTS
from .simulate import simulate_block


class Circuit:
    r"""An immutable Hamming-weight-preserving circuit of RBS / FBS gates.

    A circuit on ``n`` qubits is a sequence of two-qubit gates; gate ``g`` uses parameter
    ``gates[g].param`` (parameters may be shared).  Its unitary :math:`U(\theta)` is block
    diagonal over Hamming weights; :meth:`hamming_block` returns the weight-k block in the
    lexicographic basis of :func:`~qiadapters.hamming_basis`.

    Build one from a layout (``Circuit.pyramid(8)``, ``Circuit.butterfly(8, gate="fbs")``, any
    name in :data:`~qiadapters.circuits.layouts.LAYOUTS` through :meth:`from_layout`) or from an
    explicit gate list with :meth:`from_gates`.

    Gates are grouped into ``layers`` of commuting gates by earliest-possible scheduling, so
    this never changes the unitary: RBS gates on disjoint wires commute, and so do FBS gates
    (even fermionic operators), but an FBS gate reads the parity of the wires between its
    own, which a non-adjacent RBS gate can change; in a circuit mixing the two, each gate
    therefore occupies every wire from ``min(i, j)`` to ``max(i, j)`` for the scheduling.

    Example::

        >>> c = Circuit.pyramid(4)
        >>> c.n_params, c.depth
        (6, 5)
        >>> c.hamming_block(torch.zeros(6), 2).shape
        torch.Size([6, 6])
    """

    __slots__ = ("_n", "_gates", "_n_params", "_layers", "_layout")

    def __init__(self, n_qubits: int, gates: Sequence[Gate], n_params: int | None = None,
                 layout: str = "custom"):
        n = checks.integer("n_qubits", n_qubits, low=2)
        gates = tuple(gates)
        for g in gates:
            if not isinstance(g, Gate):
                raise TypeError(f"gates must be gate instances from {list(GATES)}, got {g!r}")
            i, j = g.wires
            for w in (i, j):
                checks.integer("wires", w, low=0, high=n - 1)
            if i == j:
                raise ValueError(f"wires={g.wires} must be two different qubits in 0..{n - 1}")
        used = max((g.param for g in gates), default=-1) + 1
        n_params = used if n_params is None else checks.integer("n_params", n_params, low=used)
        self._n, self._gates, self._n_params, self._layout = n, gates, n_params, layout
        self._layers = self._schedule(n, gates)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_gates(cls, n: int, wires: Iterable[tuple[int, int]], gate: str = "rbs",
                   params: Sequence[int] | None = None) -> "Circuit":
        """Circuit with the listed gates acting in list order (the first acts first).

        Gate ``p`` uses parameter ``p`` unless ``params`` maps gates to shared parameters.
        The gate's 2x2 matrix is in the basis ``(e_i, e_j)`` as listed.
        """
        kind = GATES[checks.choice("gate", gate, GATES)]
        n = checks.integer("n", n, low=2)
        wires = [tuple(w) for w in wires]
        for w in wires:
            if len(w) != 2:
                raise ValueError(f"wires={w!r} must be a pair (i, j) of qubits in 0..{n - 1}")
        if params is None:
            params = range(len(wires))
        elif len(params) != len(wires):
            raise ValueError(f"params has {len(params)} entries; it needs one per gate "
                             f"({len(wires)})")
        gates = [kind((int(i), int(j)), checks.integer("params", p, low=0))
                 for (i, j), p in zip(wires, params)]
        return cls(n, gates, layout="custom")

    @classmethod
    def from_layout(cls, layout: str, n: int, gate: str = "rbs", **options) -> "Circuit":
        """Circuit of a registered layout (see :data:`LAYOUTS`) with one parameter per gate."""
        build = LAYOUTS[checks.choice("layout", layout, LAYOUTS)]
        n = checks.integer("n", n, low=2)
        circuit = cls.from_gates(n, build(n, **options), gate=gate)
        circuit._layout = layout
        return circuit

    @classmethod
    def pyramid(cls, n: int, gate: str = "rbs") -> "Circuit":
        """Pyramid layout: ``n(n-1)/2`` nearest-neighbour gates, depth ``2n-3``."""
        return cls.from_layout("pyramid", n, gate)

    @classmethod
    def brick(cls, n: int, depth: int | None = None, gate: str = "rbs") -> "Circuit":
        """Brick-wall layout, ``depth`` layers (default ``n``: ``n(n-1)/2`` gates)."""
        return cls.from_layout("brick", n, gate, depth=depth)

    @classmethod
    def x(cls, n: int, gate: str = "rbs") -> "Circuit":
        """X layout: ``2n-3`` nearest-neighbour gates along the pyramid's two diagonals."""
        return cls.from_layout("x", n, gate)

    @classmethod
    def butterfly(cls, n: int, gate: str = "rbs") -> "Circuit":
        """Butterfly layout, ``n`` a power of two: ``(n/2) log2 n`` gates in ``log2 n`` layers."""
        return cls.from_layout("butterfly", n, gate)

    # ---------------------------------------------------------------- properties
    @property
    def n_qubits(self) -> int:
        return self._n

    @property
    def n_params(self) -> int:
        return self._n_params

    @property
    def gates(self) -> tuple[Gate, ...]:
        return self._gates

    @property
    def layers(self) -> tuple[tuple[Gate, ...], ...]:
        """Gates grouped into layers of commuting gates on disjoint wires, in execution order."""
        return tuple(tuple(self._gates[g] for g in layer) for layer in self._layers)

    @property
    def depth(self) -> int:
        return len(self._layers)

    @property
    def layout(self) -> str:
        return self._layout

    @property
    def gate_kinds(self) -> frozenset[str]:
        return frozenset(g.name for g in self._gates)

    @property
    def nearest_neighbour(self) -> bool:
        """True if every gate acts on adjacent wires ``|i - j| = 1``."""
        return all(abs(g.wires[0] - g.wires[1]) == 1 for g in self._gates)

    @property
    def compound_exact(self) -> bool:
        """True when ``hamming_block(theta, k) == compound(hamming_block(theta, 1), k)``:
        FBS gates on any wires, RBS gates only on adjacent wires."""
        return all(g.compound_exact for g in self._gates)

    # ---------------------------------------------------------------- maths
    def check_theta(self, theta: torch.Tensor) -> torch.Tensor:
        """Validate angles ``theta: (..., n_params)`` of a floating dtype."""
        if not isinstance(theta, torch.Tensor):
            raise TypeError(f"theta must be a torch.Tensor of shape (..., {self.n_params}), "
                            f"got {type(theta).__name__}")
        if not theta.is_floating_point():
            raise TypeError(f"theta has dtype {theta.dtype}; it must be a floating dtype")
        if theta.dim() == 0 or theta.shape[-1] != self.n_params:
            raise ValueError(f"theta has shape {tuple(theta.shape)}; expected (..., "
                             f"{self.n_params}) for this circuit's {self.n_params} parameters")
        return theta

    def hamming_block(self, theta: torch.Tensor, k: int) -> torch.Tensor:
        """Exact weight-k block ``(..., C(n,k), C(n,k))`` of the circuit for ``theta: (..., n_params)``.

        Simulated gate by gate in the weight-k basis, so it is exact for any connectivity and
        gate kind; batched over leading dims, differentiable, any float dtype and device.
        """
        self.check_theta(theta)
        k = checks.integer("k", k, low=0, high=self._n)
        if not torch.compiler.is_compiling() and not torch.isfinite(theta).all():
            bad = (~torch.isfinite(theta)).nonzero()[0].tolist()
            raise ValueError(f"theta has a non-finite angle {theta[tuple(bad)].item()} at index "
                             f"{tuple(bad)}; angles must be finite (NaN/inf gives a NaN block)")
        return simulate_block(self, theta, k)

    def compile(self, orders=(1, 2), blocks: int = 1, dtype=None, device=None):
        """Compile into a fast batched op; see :class:`~qiadapters.circuits.compiled.CompiledCircuit`."""
        from .compiled import CompiledCircuit

        return CompiledCircuit(self, orders=orders, blocks=blocks, dtype=dtype, device=device)

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _schedule(n: int, gates) -> tuple[tuple[int, ...], ...]:
        # A non-adjacent RBS gate can change the parity an FBS gate reads: see the class doc.
        spans = any(g.fermionic for g in gates) and not all(g.compound_exact for g in gates)
        free_at = [0] * n
        layers: list[list[int]] = []
        for g, gate in enumerate(gates):
            lo, hi = sorted(gate.wires)
            wires = range(lo, hi + 1) if spans else (lo, hi)
            t = max(free_at[w] for w in wires)
            if t == len(layers):
                layers.append([])
            layers[t].append(g)
            for w in wires:
                free_at[w] = t + 1
        return tuple(tuple(layer) for layer in layers)

    def __eq__(self, other) -> bool:
        return (isinstance(other, Circuit) and self._n == other._n
                and self._gates == other._gates and self._n_params == other._n_params)

    def __hash__(self) -> int:
        return hash((self._n, self._gates, self._n_params))

    def __getstate__(self):
        return (self._n, self._gates, self._n_params, self._layout)

    def __setstate__(self, state):
        n, gates, n_params, layout = state
        self._n, self._gates, self._n_params, self._layout = n, gates, n_params, layout
        self._layers = self._schedule(n, gates)

    def __repr__(self) -> str:
        kinds = "+".join(sorted(self.gate_kinds)) or "none"
        return (f"Circuit(layout={self._layout!r}, n_qubits={self._n}, gates={len(self._gates)}, "
                f"n_params={self._n_params}, depth={self.depth}, gate={kinds!r})")

    def __str__(self) -> str:
        return draw(self)


def draw(circuit: Circuit) -> str:
    """Text diagram: one row per wire, one column per group of non-overlapping gates.

    A gate prints as ``<label><param>`` on both its wires (``R`` = RBS, ``F`` = FBS) and
    ``│`` on the wires it spans; columns are separated by wire segments ``─``.
    """
    n = circuit.n_qubits
    columns: list[list[Gate]] = []
    for layer in circuit.layers:
        spans: list[list[Gate]] = []
        for gate in layer:
            lo, hi = sorted(gate.wires)
            for col in spans:  # pack gates whose vertical spans do not overlap
                if all(hi < min(g.wires) or lo > max(g.wires) for g in col):
                    col.append(gate)
                    break
            else:
                spans.append([gate])
        columns += spans
    width = max([len(f"{g.label}{g.param}") for g in circuit.gates] + [1])
    rows = [[f"q{w}:".ljust(len(f"q{n - 1}:")) + " ─"] for w in range(n)]
    for col in columns:
        cells = ["─" * width] * n
        for g in col:
            lo, hi = sorted(g.wires)
            for w in (lo, hi):
                cells[w] = f"{g.label}{g.param}".center(width, "─")
            for w in range(lo + 1, hi):
                cells[w] = "│".center(width, "─")
        for w in range(n):
            rows[w].append(cells[w] + "─")
    return "\n".join("".join(r) for r in rows)
