r"""Which route applies a weight-k compound block: built (``x B``) or mode-wise (``x C_k(U)``
without ``B``, :mod:`.modewise`); and whether built blocks are applied whole (:func:`use_whole`).
A choice on shapes and the device type only (no data, no sync), made in one place,
:func:`~qiadapters.circuits.operands.plan_route`.

Estimated time of a training step's share (forward + backward) for ``T`` tokens, ``r``
blocks, ``m = C(n,k)``:

.. math:: t_\text{block} = r\, m^2\, (\gamma\, T + \delta\, [\text{blocks not built yet}])
          + L_\text{block},
          \qquad
          t_\text{mode} = r\, T\, (\alpha\, k!\, n^k + \beta\, k\, n^{k+1}) + L_\text{mode}.

* ``gamma``: per multiply-add of the three ``(T, m) x (m, m)`` products of the block route
  (forward, input gradient, block gradient);
* ``delta``: per entry of a built block, building it and back-propagating through the build
  (minors, their backward, copies) -- the cost the mode-wise route avoids.  In training the
  blocks of every layer of a model are built together (:mod:`qiadapters.adapters.hamming.batched`),
  so a layer pays this marginal cost per entry, not the fixed cost of a build of its own;
* ``alpha``: per element of the ``n^k``-per-token buffer and its ``k!`` gathers/scatters
  (memory bound);
* ``beta``: per multiply-add of the ``k`` mode products (GEMMs whose inner dimension is only
  ``n``, slower per multiply-add than the block route's);
* ``launch_block``, ``launch_mode``: each route's fixed cost per layer and order, forward +
  backward, whatever the size: kernel launches on a GPU; on the CPU the operations' dispatch
  (the mode-wise route runs about three times as many operations: its buffer, gathers,
  scatters and ``k`` products, each way).

Mode-wise is chosen when ``t_mode < t_block`` for the layer's ``r`` blocks.  Blocks kept by
the inference cache are already built (``delta`` does not apply), and order 1 always uses
its block ``U`` itself.
Constants per device type (:data:`COSTS`, nanoseconds; other devices use the CUDA entry,
``meta`` the CPU one).  CPU: ``gamma``, ``alpha``, ``beta`` fitted to both routes' forward +
backward timed with one thread (``python -m benchmarks.route_costs`` prints the measured
times next to the model's choice); ``delta`` and the fixed costs from both routes timed at
8-64 tokens next to a batched build's marginal cost per entry.
CUDA: fitted to the same command with ``--device cuda`` on an H200 (torch 2.11), where up to
n = 44 and 2048 tokens both routes were launch-bound and the mode-wise route launches more
kernels, so the block route is chosen at every size measured there; the mode-wise route is
left for blocks too large to build (n in the hundreds).  The timings behind both fits:
``benchmarks/speed/notes.md``, "Choosing the route: the cost model".  Rough either way, but
the routes differ by large factors except near the crossover, where either is fine.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb, factorial


@dataclass(frozen=True)
class RouteCosts:
    """The constants of the cost model (module docstring), in nanoseconds."""

    gamma: float  # per multiply-add of the block route, per token
    delta: float  # per block entry built (forward + backward), once per step
    alpha: float  # per n^k-buffer element, per token and permutation
    beta: float   # per multiply-add of the mode products, per token
    launch_block: float = 0.0  # fixed cost of the block route (kernel launches)
    launch_mode: float = 0.0   # fixed cost of the mode-wise route


#: Fitted constants by device type (``benchmarks/speed/notes.md``, "Choosing the route: the
#: cost model").
COSTS: dict[str, RouteCosts] = {
    "cpu": RouteCosts(gamma=0.04, delta=10.0, alpha=2.5, beta=0.25,
                      launch_block=9e4, launch_mode=3e5),
    "cuda": RouteCosts(gamma=2e-4, delta=0.01, alpha=0.3, beta=1e-4,
                       launch_block=9e5, launch_mode=1e6),
}


def costs_for(device_type: str) -> RouteCosts:
    """:data:`COSTS` entry of a device type (``meta`` counts as CPU, unknown ones as CUDA)."""
    if device_type in ("cpu", "meta"):
        return COSTS["cpu"]
    return COSTS.get(device_type, COSTS["cuda"])


def block_cost(tokens: int, n: int, k: int, device_type: str = "cpu", built: bool = False,
               blocks: int = 1) -> float:
    """Estimated ns of the block route for one order of ``blocks`` blocks (module
    docstring; the fixed cost is paid once, whatever ``blocks``)."""
    c, m = costs_for(device_type), comb(n, k)
    return blocks * m * m * (c.gamma * tokens + (0.0 if built else c.delta)) + c.launch_block


def mode_cost(tokens: int, n: int, k: int, device_type: str = "cpu", blocks: int = 1) -> float:
    """Estimated ns of the mode-wise route for one order of ``blocks`` blocks (module
    docstring; the fixed cost is paid once, whatever ``blocks``)."""
    c = costs_for(device_type)
    return (blocks * tokens * (c.alpha * factorial(k) * n ** k + c.beta * k * n ** (k + 1))
            + c.launch_mode)


def use_modewise(tokens: int, n: int, k: int, device_type: str = "cpu",
                 built: bool = False, blocks: int = 1) -> bool:
    """Whether order ``k`` of a layer's ``blocks`` blocks is applied mode-wise: ``2 <= k < n``
    and it is estimated cheaper for ``tokens`` rows."""
    if k < 2 or k >= n:
        return False
    return (mode_cost(tokens, n, k, device_type, blocks)
            < block_cost(tokens, n, k, device_type, built, blocks))


#: The whole-block route (:func:`use_whole`) is taken while it costs at most this many
#: multiply-adds per feature and token more than the per-order products:
#: ``(b^2 - sum_k C(n,k)^2) / b``, against the per-order route's split of the features into
#: pieces and their concatenation (a copy of every feature, forward and backward, and a few
#: small products per order).  Set between the layouts where whole blocks were measured
#: faster (17-40 extra multiply-adds per feature: orders {1, 2} in blocks of 32, 64, 128;
#: {1, 2, 3} in blocks of 48) and slower (75-97: orders {1, 2} in blocks of 341 and 512,
#: {1, 2, 3} in blocks of 128); timings in ``benchmarks/speed/notes.md``, "Smaller blocks,
#: made fast".
WHOLE_MAX_EXTRA = 48


def use_whole(block_size: int, sizes) -> bool:
    """Whether ``D`` is applied as its ``r`` whole ``b x b`` blocks (the orders' blocks and the
    identity pad assembled, one product) rather than order by order: ``b^2 - sum_k C(n,k)^2
    <= WHOLE_MAX_EXTRA * b``.  One product and no split or concatenation of the features, for
    at most :data:`WHOLE_MAX_EXTRA` more multiply-adds per feature and token."""
    return block_size * block_size - sum(m * m for m in sizes) <= WHOLE_MAX_EXTRA * block_size


def apply_macs(block_size: int, sizes, blocks: int) -> int:
    """Multiply-adds per token of one application of ``D`` (``r = blocks`` blocks of
    ``block_size`` features holding weight-k blocks of ``sizes = C(n,k)``) by the block
    route: ``r b^2`` where whole blocks are applied (:func:`use_whole`), else ``r sum_k
    C(n,k)^2`` (the pad and the tail cost nothing).  A training step does this three times
    (forward, input gradient, block gradient)."""
    if use_whole(block_size, sizes):
        return blocks * block_size * block_size
    return blocks * sum(m * m for m in sizes)
