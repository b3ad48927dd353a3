r"""PhysicsAdapter: a mixture of physical priors on the token grid (MoPPA-style).

For ``x: (batch, T, d)`` with ``e = extra_tokens`` leading tokens off the grid:

.. code-block:: text

    z      = x A^T                           down-projection d -> r       (batch, T, r)
    z_e, g = z[:, :e], z[:, e:]              extra tokens | grid tokens   g: (batch, N, r)
    ĝ      = B g                             spectral transform on the grid (boundary basis)
    m_p    = prior_p.multiplier(λ)           (N, r) per prior, learnable positive constants
    w      = router(g)                       softmax over priors
    y      = B^T ( Σ_p w_p m_p ⊙ ĝ )         global / sample router: one forward, one inverse
    y_n    = Σ_p w_{n,p} (B^T (m_p ⊙ ĝ))_n   token router: mixed in space
    delta  = (s [z_e ; y]) U^T + b_U         up-projection r -> d, U = 0 and b_U = 0 at init

so ``delta`` is exactly zero at initialisation and a wrapper ``y = f(x) + adapter(x)`` starts
as ``f``.  The extra tokens (CLS, registers) bypass the operator: their down-projected
features go to the up-projection unchanged (a plain low-rank path), so they are adapted too.
``s`` is a learnable scalar output scale (applied to the ``r``-wide features before ``U``,
which is the same map as scaling ``[z_e ; y] U^T``, and one pass over ``d``-wide tensors
cheaper; the bias ``b_U`` is not scaled).

Grid rule (``grid``): ``"auto"`` uses ``(s, s)`` when the ``N = T - e`` grid tokens are a
perfect square ``s²`` with ``s >= 2`` and the sequence ``(N,)`` otherwise; ``"sequence"``
always uses ``(N,)``; a tuple ``(H, W)`` or ``(L,)`` fixes the grid (and ``N`` must match).
Bases are cached per size, dtype and device, so variable lengths work under "auto" and
"sequence".
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from qiadapters import checks

from .bases import eigenvalues, get_boundary, inverse_transform, transform
from .grids import GridSpec, infer_grid
from .options import check_adapter_options
from .priors import PRIORS
from .routers import ROUTERS, prior_weights, route_loss

__all__ = ["PhysicsAdapter"]


class PhysicsAdapter(nn.Module):
    r"""Mixture-of-physical-priors adapter returning the *delta* for ``x: (batch, T, dim)``.

    Args:
        dim: model width ``d``.
        rank: bottleneck width ``r >= 1`` (the channels the priors act on).
        priors: names from :data:`physics.PRIORS` (``"heat"``, ``"wave"``, ``"poisson"``).
        grid: ``"auto"``, ``"sequence"`` or a fixed ``(H, W)`` / ``(L,)`` (module docstring).
        router: ``"token"``, ``"sample"`` or ``"global"`` (:mod:`physics.routers`).
        boundary: ``"neumann"`` (DCT-II), ``"dirichlet"`` (DST-I) or ``"periodic"`` (real FFT).
        extra_tokens: leading tokens that bypass the grid (1 for a ViT's CLS token).
        kappa, c, t: initial heat diffusivity, wave speed and time of both (softplus-positive,
            one per channel, learned).
        poisson_gain, poisson_zero_mode, poisson_eps: Poisson source gain (learned) and its
            λ = 0 rule (:func:`physics.poisson`); ``"screened"`` with ``eps`` by default.
        balance, entropy: weights α, β of the route regulariser (:func:`physics.route_loss`).
        scale: initial value of the learnable output scale.
        bias: whether the projections have biases.

    Shapes: ``forward(x: (batch, T, dim)) -> (batch, T, dim)``.  After each forward,
    :meth:`aux_loss` holds the route regulariser of that call (a scalar with grad).

    Example::

        >>> adapter = PhysicsAdapter(384, rank=8, extra_tokens=1)   # ViT-S, 14x14 + CLS
        >>> x = torch.randn(2, 197, 384)
        >>> delta = adapter(x)                                       # zeros at init
        >>> loss = task_loss(block(x) + delta) + adapter.aux_loss()
    """

    def __init__(self, dim: int, rank: int = 8, priors: Sequence[str] = ("heat", "wave", "poisson"),
                 grid: GridSpec = "auto", router: str = "token", boundary: str = "neumann",
                 extra_tokens: int = 0, *, out_dim: int | None = None, kappa: float = 1.0, c: float = 1.0, t: float = 1.0,
                 poisson_gain: float = 0.1, poisson_zero_mode: str = "screened",
                 poisson_eps: float = 0.1, balance: float = 0.01, entropy: float = 0.0,
                 scale: float = 1.0, bias: bool = True):
        # Every check runs before any state is built.
        dim = checks.integer("dim", dim, low=1)
        out_dim = dim if out_dim is None else checks.integer("out_dim", out_dim, low=1)
        o = check_adapter_options(
            rank=rank, priors=priors, grid=grid, router=router, boundary=boundary,
            extra_tokens=extra_tokens, kappa=kappa, c=c, t=t, poisson_gain=poisson_gain,
            poisson_zero_mode=poisson_zero_mode, poisson_eps=poisson_eps, balance=balance,
            entropy=entropy, scale=scale, bias=bias)

        super().__init__()
        rank, names = o["rank"], o["priors"]
        self.dim, self.out_dim, self.rank, self.prior_names = dim, out_dim, rank, names
        self.grid, self.boundary, self.extra_tokens = o["grid"], o["boundary"], o["extra_tokens"]
        self.router_name, self.balance, self.entropy = o["router"], o["balance"], o["entropy"]
        options = {"heat": {"kappa": o["kappa"], "t": o["t"]},
                   "wave": {"c": o["c"], "t": o["t"]},
                   "poisson": {"gain": o["poisson_gain"], "zero_mode": o["poisson_zero_mode"],
                               "eps": o["poisson_eps"]}}
        self.down = nn.Linear(dim, rank, bias=o["bias"])
        self.priors = nn.ModuleDict({n: PRIORS[n](rank, **options.get(n, {})) for n in names})
        self.router = ROUTERS[o["router"]](rank, len(names))
        self.up = nn.Linear(rank, out_dim, bias=o["bias"])
        nn.init.zeros_(self.up.weight)
        if o["bias"]:
            nn.init.zeros_(self.up.bias)
        self.scale = nn.Parameter(torch.tensor(o["scale"]))
        self._aux: torch.Tensor | None = None

    def __getstate__(self):
        # The latest route loss belongs to one forward's graph: copies and pickles drop it
        # (deepcopy refuses non-leaf tensors, e.g. for an EMA copy after a training step).
        state = dict(self.__dict__)
        state["_aux"] = None
        return state

    # -- shapes -------------------------------------------------------------------------

    def grid_shape(self, tokens: int) -> tuple[int, ...]:
        """The grid used for inputs with ``tokens`` tokens (raises ValueError if none fits)."""
        return infer_grid(tokens, self.grid, self.extra_tokens)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x.shape={tuple(x.shape)} is not valid; valid: "
                             f"(batch, tokens, {self.dim})")

    # -- pieces -------------------------------------------------------------------------

    def multipliers(self, shape: tuple[int, ...], dtype=None, device=None) -> torch.Tensor:
        """``(P, N, r)``: each prior's spectral multiplier on the grid ``shape`` (flattened)."""
        p = self.scale
        lam = eigenvalues(self.boundary, shape, dtype=dtype or p.dtype,
                          device=device or p.device).reshape(-1)
        return torch.stack([prior.multiplier(lam) for prior in self.priors.values()])

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """Router weights for ``x``: ``(P,)``, ``(batch, P)`` or ``(batch, N, P)``."""
        self._check_input(x)
        self.grid_shape(x.shape[1])
        return prior_weights(self.router, self.down(x)[:, self.extra_tokens:])

    def aux_loss(self) -> torch.Tensor:
        """Route regulariser of the latest forward (zero before the first one)."""
        if self._aux is None:
            return torch.zeros((), dtype=self.scale.dtype, device=self.scale.device)
        return self._aux

    # -- forward ------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        shape = self.grid_shape(x.shape[1])
        b, e, r = x.shape[0], self.extra_tokens, self.rank
        n = math.prod(shape)
        bnd = get_boundary(self.boundary)

        z = self.down(x)
        g = z[:, e:]
        w = prior_weights(self.router, g)
        self._aux = route_loss(w, self.balance, self.entropy)
        mults = self.multipliers(shape, z.dtype, z.device)                  # (P, N, r)
        g_hat = transform(g.reshape(b, *shape, r), bnd).reshape(b, n, r)

        if self.router.per_token:
            p = mults.shape[0]
            y_hat = g_hat.unsqueeze(2) * mults.transpose(0, 1)              # (b, N, P, r)
            y = inverse_transform(y_hat.reshape(b, *shape, p * r), bnd).reshape(b, n, p, r)
            y = (w.unsqueeze(-1) * y).sum(dim=2)
        else:
            if w.ndim == 1:                                                  # global
                m = torch.tensordot(w, mults, dims=1)                       # (N, r)
            else:                                                            # per sample
                m = torch.einsum("bp,pnr->bnr", w, mults)
            y = inverse_transform((m * g_hat).reshape(b, *shape, r), bnd).reshape(b, n, r)

        z = y if e == 0 else torch.cat([z[:, :e], y], dim=1)
        # the scale acts on the r-wide features, not on the d-wide output (one pass fewer)
        return self.up(z * self.scale)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, out_dim={self.out_dim}, rank={self.rank}, "
                f"priors={self.prior_names}, "
                f"grid={self.grid!r}, router={self.router_name!r}, "
                f"boundary={self.boundary!r}, extra_tokens={self.extra_tokens}")
