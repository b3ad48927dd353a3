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

**Padding** (``forward(x, mask)``, ``mask: (batch, T)``, nonzero = a real token): the grid of
each row is its real grid tokens, in order (left, right or any padding; the grid rule applies
to their number), so padded positions never change a real token's output.  A padded
position's grid features are 0 (its delta is the up-projection's bias ``b_U``); the route
regulariser counts real tokens only.  Rows with the same number of real tokens are solved
together (one group per distinct length: the lengths are read on the host).

**Causal** (``causal=True``): the output at grid token ``t`` is the operator solved on the
prefix ``0..t`` (:mod:`physics.causal`); the grid is 1D (``"auto"`` means ``"sequence"``);
the sample router gates each token on the mean of its prefix.  Token ``t``'s delta then
depends on tokens ``<= t`` only (the extra tokens lead the sequence and are per-token).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from qiadapters import bounds, checks

from .bases import eigenvalues, get_boundary, inverse_transform, transform
from .causal import causal_kernel
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
        router: ``"token"``, ``"sample"`` or ``"global"`` (:mod:`physics.routers`); with a
            single prior there is nothing to route and no router is built.
        boundary: ``"neumann"`` (DCT-II), ``"dirichlet"`` (DST-I) or ``"periodic"`` (real FFT).
        extra_tokens: leading tokens that bypass the grid (1 for a ViT's CLS token).
        kappa, c, t: initial heat diffusivity, wave speed and time of both (softplus-positive,
            one per channel, learned).
        poisson_gain, poisson_zero_mode, poisson_eps: Poisson source gain (learned) and its
            λ = 0 rule (:func:`physics.poisson`); ``"screened"`` with ``eps`` by default.
        balance, entropy: weights α, β of the route regulariser (:func:`physics.route_loss`).
        scale: initial value of the learnable output scale.
        bias: whether the projections have biases.
        causal: solve on each token's prefix, so no token sees a later one (module
            docstring; 1D grids only).
        square_grid: None, or why the grid tokens form a square (the model has a patch
            grid, e.g. ``"ViTModel has a patch grid (image_size=224, patch_size=16)"``):
            ``grid="auto"`` then refuses a token count whose grid tokens are no square
            (``extra_tokens`` not counting the CLS token) instead of falling back to 1D.

    Shapes: ``forward(x: (batch, T, dim), mask: (batch, T) | None) -> (batch, T, out_dim)``.  After each forward,
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
                 scale: float = 1.0, bias: bool = True, causal: bool = False,
                 square_grid: str | None = None):
        # Every check runs before any state is built.
        dim = checks.integer("dim", dim, low=1)
        out_dim = dim if out_dim is None else checks.integer("out_dim", out_dim, low=1)
        o = check_adapter_options(
            rank=rank, priors=priors, grid=grid, router=router, boundary=boundary,
            extra_tokens=extra_tokens, kappa=kappa, c=c, t=t, poisson_gain=poisson_gain,
            poisson_zero_mode=poisson_zero_mode, poisson_eps=poisson_eps, balance=balance,
            entropy=entropy, scale=scale, bias=bias, causal=causal)
        for arg, width in (("dim", dim), ("out_dim", out_dim)):
            bounds.check(arg, width, width, bounds.MAX_WIDTH, "the adapter's width would be",
                         "qiadapters.bounds.MAX_WIDTH", "check the value")
        bounds.check("rank", o["rank"], o["rank"], bounds.MAX_RANK_RATIO * dim,
                     f"on dim={dim} the bottleneck would be", "qiadapters.bounds.MAX_RANK_RATIO "
                     "* dim", "use a rank below the width (a bottleneck)")

        super().__init__()
        rank, names = o["rank"], o["priors"]
        self.dim, self.out_dim, self.rank, self.prior_names = dim, out_dim, rank, names
        self.grid, self.boundary, self.extra_tokens = o["grid"], o["boundary"], o["extra_tokens"]
        self.router_name, self.balance, self.entropy = o["router"], o["balance"], o["entropy"]
        self.causal = o["causal"]
        self.square_grid = square_grid
        options = {"heat": {"kappa": o["kappa"], "t": o["t"]},
                   "wave": {"c": o["c"], "t": o["t"]},
                   "poisson": {"gain": o["poisson_gain"], "zero_mode": o["poisson_zero_mode"],
                               "eps": o["poisson_eps"]}}
        self.down = nn.Linear(dim, rank, bias=o["bias"])
        self.priors = nn.ModuleDict({n: PRIORS[n](rank, **options.get(n, {})) for n in names})
        # One prior needs no routing (its weight is 1); a router there would hold parameters
        # that no gradient reaches.
        self.router = ROUTERS[o["router"]](rank, len(names)) if len(names) > 1 else None
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
        grid = "sequence" if self.causal and self.grid == "auto" else self.grid
        shape = infer_grid(tokens, grid, self.extra_tokens)
        if self.square_grid is not None and grid == "auto" and len(shape) == 1:
            raise ValueError(self._not_square(tokens))
        return shape

    def _not_square(self, tokens: int) -> str:
        """Why ``tokens`` tokens fit no square grid in a model with a patch grid, and the fix."""
        e, n = self.extra_tokens, tokens - self.extra_tokens
        fits = [k for k in range(1, min(8, tokens - 4) + 1)
                if round((tokens - k) ** 0.5) ** 2 == tokens - k]
        hint = ""
        if fits:
            s = round((tokens - fits[0]) ** 0.5)
            hint = f"; here extra_tokens={fits[0]} leaves {s}x{s} = {s * s} patches"
        return (f"extra_tokens={e} puts {n} of the {tokens} tokens on the grid, which is not a "
                f"square, but {self.square_grid}: grid='auto' would fall back to a 1D sequence "
                f"of {n} tokens.  Set extra_tokens to the number of tokens before the patches "
                f"(1 for a ViT's CLS token){hint}; or choose the grid: grid='sequence' or "
                f"grid=(H, W)")

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x.shape={tuple(x.shape)} is not valid; valid: "
                             f"(batch, tokens, {self.dim})")

    @staticmethod
    def _check_mask(mask, x: torch.Tensor) -> torch.Tensor | None:
        if mask is None:
            return None
        if not torch.is_tensor(mask) or mask.shape != x.shape[:2]:
            shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
            raise ValueError(f"mask.shape={shape} is not valid; valid: (batch, tokens) = "
                             f"{tuple(x.shape[:2])}, nonzero for real tokens")
        return mask.to(device=x.device) != 0

    # -- pieces -------------------------------------------------------------------------

    def multipliers(self, shape: tuple[int, ...], dtype=None, device=None) -> torch.Tensor:
        """``(P, N, r)``: each prior's spectral multiplier on the grid ``shape`` (flattened)."""
        p = self.scale
        lam = eigenvalues(self.boundary, shape, dtype=dtype or p.dtype,
                          device=device or p.device).reshape(-1)
        return torch.stack([prior.multiplier(lam) for prior in self.priors.values()])

    def causal_kernels(self, n: int, dtype=None, device=None) -> torch.Tensor:
        """``(n, n, P, r)``: each prior's causal kernel on ``n`` tokens, lower triangular in
        its first two axes (:func:`physics.causal.causal_kernel`)."""
        p = self.scale
        stack = lambda lam: torch.cat([pr.multiplier(lam) for pr in self.priors.values()], -1)
        kernel = causal_kernel(stack, n, self.boundary, dtype=dtype or p.dtype,
                               device=device or p.device)
        return kernel.reshape(n, n, len(self.priors), self.rank)

    def _weights(self, g: torch.Tensor) -> torch.Tensor:
        """Router weights on grid features ``g: (b, N, r)``; causal: the sample router gates
        each token on its prefix mean, ``(b, N, P)``; a single prior: the weight 1, ``(1,)``."""
        if self.router is None:
            return g.new_ones(1)
        if self.causal and self.router_name == "sample":
            count = torch.arange(1, g.shape[1] + 1, dtype=g.dtype, device=g.device)
            prefix_mean = g.cumsum(dim=1) / count[:, None]
            return torch.softmax(self.router(prefix_mean.reshape(-1, self.rank)), -1
                                 ).reshape(*g.shape[:2], len(self.priors))
        return prior_weights(self.router, g)

    def route(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Router weights for ``x``: ``(P,)``, ``(batch, P)`` or ``(batch, N, P)`` (without
        padding; with a mask use the forward, whose :meth:`aux_loss` counts real tokens)."""
        self._check_input(x)
        self.grid_shape(x.shape[1])
        return self._weights(self.down(x)[:, self.extra_tokens:])

    def aux_loss(self) -> torch.Tensor:
        """Route regulariser of the latest forward (zero before the first one)."""
        if self._aux is None:
            return torch.zeros((), dtype=self.scale.dtype, device=self.scale.device)
        return self._aux

    def _operate(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, w)``: the routed operator on grid tokens ``g: (b, N, r)`` (all real) and the
        router weights."""
        b, n, r = g.shape
        shape = self.grid_shape(self.extra_tokens + n)
        w = self._weights(g)
        if self.causal:
            kernels = self.causal_kernels(n, g.dtype, g.device)             # (N, N, P, r)
            if w.ndim == 1:
                return torch.einsum("tspr,p,bsr->btr", kernels, w, g), w
            return torch.einsum("tspr,bsr,btp->btr", kernels, g, w), w
        bnd = get_boundary(self.boundary)
        mults = self.multipliers(shape, g.dtype, g.device)                  # (P, N, r)
        g_hat = transform(g.reshape(b, *shape, r), bnd).reshape(b, n, r)
        if self.router is not None and self.router.per_token:
            p = mults.shape[0]
            y_hat = g_hat.unsqueeze(2) * mults.transpose(0, 1)              # (b, N, P, r)
            y = inverse_transform(y_hat.reshape(b, *shape, p * r), bnd).reshape(b, n, p, r)
            return (w.unsqueeze(-1) * y).sum(dim=2), w
        if w.ndim == 1:                                                      # global
            m = torch.tensordot(w, mults, dims=1)                           # (N, r)
        else:                                                                # per sample
            m = torch.einsum("bp,pnr->bnr", w, mults)
        return inverse_transform((m * g_hat).reshape(b, *shape, r), bnd).reshape(b, n, r), w

    def _operate_masked(self, g: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The operator on each row's real grid tokens (``keep: (b, N)`` bool); padded
        positions get 0.  Sets the route regulariser over real tokens only."""
        b, n, r = g.shape
        # real tokens first, in order (a stable sort), so each row's grid is a prefix
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
        real = keep.gather(1, order)
        index = order.unsqueeze(-1).expand(-1, -1, r)
        packed = g.gather(1, index) * real.unsqueeze(-1)
        if self.causal:  # a prefix never sees what follows it: one pass for every length
            y, w = self._operate(packed)
            units = real if w.ndim == 3 else None
            self._aux = route_loss(w, self.balance, self.entropy, mask=units) if b else None
        else:  # one grid per distinct number of real tokens
            counts = real.sum(dim=1)
            y = packed.new_zeros(b, n, r)
            weights = []
            for length in sorted(set(counts.tolist()) - {0}):
                rows = (counts == length).nonzero().squeeze(1)
                y_rows, w = self._operate(packed[rows, :length])
                y = y.index_put((rows[:, None], torch.arange(length, device=g.device)), y_rows)
                weights.append(w.reshape(-1, w.shape[-1]))
            if weights:
                self._aux = route_loss(torch.cat(weights), self.balance, self.entropy)
            else:
                self._aux = None
        y = y * real.unsqueeze(-1)
        return torch.empty_like(y).scatter(1, index, y)                      # unsort

    # -- forward ------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The delta for ``x: (batch, T, dim)``; ``mask: (batch, T)`` marks the real tokens
        (nonzero) among padding (module docstring)."""
        self._check_input(x)
        keep = self._check_mask(mask, x)
        e = self.extra_tokens
        if keep is None:
            self.grid_shape(x.shape[1])  # a token count that fits no grid raises first
        z = self.down(x)
        g = z[:, e:]
        if keep is None:
            y, w = self._operate(g)
            # an empty batch routes nothing: no regulariser (a mean over no unit is NaN)
            self._aux = route_loss(w, self.balance, self.entropy) if x.shape[0] else None
        else:
            y = self._operate_masked(g, keep[:, e:])
        z = y if e == 0 else torch.cat([z[:, :e], y], dim=1)
        # the scale acts on the r-wide features, not on the d-wide output (one pass fewer)
        return self.up(z * self.scale)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, out_dim={self.out_dim}, rank={self.rank}, "
                f"priors={self.prior_names}, "
                f"grid={self.grid!r}, router={self.router_name!r}, "
                f"boundary={self.boundary!r}, extra_tokens={self.extra_tokens}, "
                f"causal={self.causal}")
