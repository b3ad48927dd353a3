r"""Which route applies a weight-k compound block: built (``x B``) or mode-wise (``x C_k(U)``
without ``B``, :mod:`.modewise`).  A choice on shapes and the device type only (no data, no
sync), made per order by :func:`~qiadapters.circuits.blockdiag.apply_blocks`.

Estimated time of a training step's share (forward + backward) for ``T`` tokens, ``r``
blocks, ``m = C(n,k)``:

.. math:: t_\text{block} = r\, m^2\, (\gamma\, T + \delta\, [\text{blocks not built yet}]),
          \qquad
          t_\text{mode} = r\, T\, (\alpha\, k!\, n^k + \beta\, k\, n^{k+1}).

* ``gamma``: per multiply-add of the three ``(T, m) x (m, m)`` products of the block route
  (forward, input gradient, block gradient);
* ``delta``: per entry of a built block, building it and back-propagating through the build
  (minors, their backward, copies, kernel launches) -- the cost the mode-wise route avoids;
* ``alpha``: per element of the ``n^k``-per-token buffer and its ``k!`` gathers/scatters
  (memory bound);
* ``beta``: per multiply-add of the ``k`` mode products (GEMMs whose inner dimension is only
  ``n``, slower per multiply-add than the block route's).

Mode-wise is chosen when ``t_mode < t_block``.  Blocks kept by the inference cache are
already built (``delta`` does not apply), and order 1 always uses its block ``U`` itself.
Constants per device type (:data:`COSTS`, nanoseconds; other devices use the CUDA entry,
``meta`` the CPU one).  CPU: fitted to both routes' forward + backward timed with one thread
(``python -m benchmarks.route_costs`` prints the measured times next to the model's choice).
CUDA: derived from an H100's rates (float32 GEMMs ~30 T multiply-adds/s, memory ~3 TB/s, a
few passes over each buffer), not fitted -- check them with the same command and
``--device cuda``.  Rough either way, but the routes differ by large factors except near
the crossover, where either is fine.
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


#: Measured constants by device type (``docs/speed.md``, "Cost model").
COSTS: dict[str, RouteCosts] = {
    "cpu": RouteCosts(gamma=0.04, delta=18.0, alpha=2.5, beta=0.25),
    "cuda": RouteCosts(gamma=1e-4, delta=0.05, alpha=0.01, beta=4e-4),
}


def costs_for(device_type: str) -> RouteCosts:
    """:data:`COSTS` entry of a device type (``meta`` counts as CPU, unknown ones as CUDA)."""
    if device_type in ("cpu", "meta"):
        return COSTS["cpu"]
    return COSTS.get(device_type, COSTS["cuda"])


def block_cost(tokens: int, n: int, k: int, device_type: str = "cpu", built: bool = False,
               blocks: int = 1) -> float:
    """Estimated ns of the block route for one order (module docstring)."""
    c, m = costs_for(device_type), comb(n, k)
    return blocks * m * m * (c.gamma * tokens + (0.0 if built else c.delta))


def mode_cost(tokens: int, n: int, k: int, device_type: str = "cpu", blocks: int = 1) -> float:
    """Estimated ns of the mode-wise route for one order (module docstring)."""
    c = costs_for(device_type)
    return blocks * tokens * (c.alpha * factorial(k) * n ** k + c.beta * k * n ** (k + 1))


def use_modewise(tokens: int, n: int, k: int, device_type: str = "cpu",
                 built: bool = False) -> bool:
    """Whether order ``k`` is applied mode-wise: ``2 <= k < n`` and it is estimated cheaper."""
    if k < 2 or k >= n:
        return False
    return mode_cost(tokens, n, k, device_type) < block_cost(tokens, n, k, device_type, built)
