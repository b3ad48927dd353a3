r"""The Hamming adapter layer: a frozen module times a block-diagonal orthogonal ``D``.

Output side (the paper): :math:`y = (f(x) - b) D + b`, for an ``nn.Linear``
:math:`(x W_0^T) D + b`, merged weight :math:`D^T W_0`.
Input side (as OFT):     :math:`y = f(x D)`, for an ``nn.Linear`` :math:`(x D) W_0^T + b`,
merged weight :math:`W_0 D^T`.

``f`` is the base module's own forward (never bypassed: quantized and custom layers run
theirs) and ``b`` its bias.  Which modules can be wrapped, along which axis ``D`` acts and how
it folds into the weight is set by the module's base kind (:mod:`.kinds`).

.. math:: D = \bigoplus_{i<r} \Big[ \bigoplus_{k \in K} B_{i,k} \oplus I_{\text{pad}} \Big]
              \oplus I_{\text{tail}}

with ``B_{i,k}`` the weight-k Hamming block of block ``i`` (see
:mod:`~qiadapters.adapters.hamming.parametrizations`).  ``D`` is applied block by block
(:func:`~qiadapters.circuits.blockdiag.apply_blocks`), never as a dense ``d x d`` matrix, in
float32 (float64 for a float64 base) whatever the base dtype.  Several active adapters on one
layer apply as their product in the order they were added.
"""
from __future__ import annotations

from math import comb
from typing import Optional, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ... import checks
from ...deprecation import renamed_keyword
from ...circuits import about_point, max_qubits
from ...circuits.block_layout import BlockLayout
from ...circuits.precision import without_autocast
from ..layer import AdapterLayer, AdapterParts, unwrap
from ..mixed_batch import row_groups
from .batched import batched_operands
from .fold_route import fold_forward
from .config import DEFAULT_LAYOUT, DEFAULT_LAYOUTS, check_options
from .kinds import BaseKind, base_kind
from .parametrizations import PARAMETRIZATIONS, Parametrization


def plan_blocks(dim: int, orders, blocks: int | None = None, block_size: int | None = None,
                n_qubits: int | None = None, power_of_two: bool = False,
                default_layout: str = DEFAULT_LAYOUT) -> BlockLayout:
    """The :class:`BlockLayout` of a Hamming adapter acting on ``dim`` features.

    ``r = blocks`` and ``b = floor(dim / r)``, or ``b = block_size`` and ``r = floor(dim / b)``;
    with neither, ``r =`` :func:`default_blocks` under the rule ``default_layout`` names
    (``"compact"``: ``max(1, dim // 32)``; ``"paper"``: ``max(3, dim // 128)``).  ``n``
    defaults to the largest ``n`` with ``sum_k C(n,k) <= b`` (a power of two if
    ``power_of_two``); ``pad = b - sum_k C(n,k)``.
    """
    opts = check_options(orders=orders, blocks=blocks, block_size=block_size,
                         n_qubits=n_qubits, default_layout=default_layout)
    return _plan(dim, opts["orders"], opts["blocks"], opts["block_size"], opts["n_qubits"],
                 power_of_two, opts["default_layout"])


def default_blocks(dim: int, smallest: int = 1, default_layout: str = DEFAULT_LAYOUT) -> int:
    """Blocks per layer when neither ``blocks`` nor ``block_size`` is given:
    ``max(fewest, dim // max(size, smallest))`` with ``(fewest, size) =``
    :data:`DEFAULT_LAYOUTS[default_layout] <DEFAULT_LAYOUTS>` (``"compact"``: (1, 32);
    ``"paper"``: (3, 128)).

    Blocks of about ``size`` features, so applying ``D`` costs the same per feature on any
    width, and at least ``fewest`` of them (the paper's 3 on layers narrower than 512).
    ``smallest`` is the smallest block the orders (or ``n_qubits``, or a butterfly's power of
    two) fit in; when it exceeds ``size`` the blocks are at least that large, so the rule
    fits every layer on which ``fewest`` blocks fit.
    """
    fewest, size = DEFAULT_LAYOUTS[checks.choice("default_layout", default_layout,
                                                 DEFAULT_LAYOUTS)]
    return max(fewest, dim // max(size, smallest))


def _plan(dim: int, ks: tuple[int, ...], blocks: Optional[int], block_size: Optional[int],
          n_qubits: Optional[int], power_of_two: bool,
          default_layout: str = DEFAULT_LAYOUT) -> BlockLayout:
    """:func:`plan_blocks` for options already checked by :func:`check_options`: only the
    checks that need ``dim`` are made here."""
    n_min = max(2, ks[-1])
    need = sum(comb(n_min, k) for k in ks)
    if block_size is None:
        if blocks is None:  # the smallest n this layout may use sets the smallest block
            least = n_qubits or (1 << (n_min - 1).bit_length() if power_of_two else n_min)
            r = default_blocks(dim, sum(comb(least, k) for k in ks), default_layout)
            given = (f"default_layout={default_layout!r} (neither blocks nor block_size "
                     f"given: blocks={r})")
        else:
            r, given = blocks, f"blocks={blocks}"
        b = dim // r
        what = f"{given} gives block size floor({dim} / {r}) = {b}"
        fix = f"use blocks <= {dim // need}" if dim >= need else "target a wider layer"
    else:
        b = block_size
        r = dim // b
        what = f"block_size={b}"
        fix = f"use {need} <= block_size <= {dim}" if dim >= need else "target a wider layer"
    if b < need or r < 1:
        raise ValueError(f"{what} on a dimension of {dim}, but orders={ks} need blocks of at "
                         f"least sum_k C({n_min},k) = {need}; {fix}")
    if n_qubits is None:
        n = max_qubits(b, ks)
        if power_of_two:
            n = 1 << (n.bit_length() - 1)
            if n < n_min:
                raise ValueError(f"{what}: the largest power-of-two n with sum_k C(n,k) <= {b} "
                                 f"is {n}, below max(orders)={ks[-1]}; use larger blocks")
    else:
        n = checks.integer("n_qubits", n_qubits, low=n_min)
        if sum(comb(n, k) for k in ks) > b:
            raise ValueError(f"n_qubits={n} needs sum_k C({n},k) = "
                             f"{sum(comb(n, k) for k in ks)} dims for orders={ks}, more than "
                             f"the block size {b}; valid: {n_min} <= n_qubits <= "
                             f"{max_qubits(b, ks)}")
        if power_of_two and n & (n - 1):
            raise ValueError(f"n_qubits={n} is not valid for layout='butterfly'; n must be a "
                             f"power of two")
    return BlockLayout(n=n, orders=ks, blocks=r, pad=b - sum(comb(n, k) for k in ks), dim=dim)


class HammingAdapter(AdapterLayer):
    r"""A frozen module (``nn.Linear``, transformers' ``Conv1D``, ``nn.Conv1d/2d/3d``) with a
    Hamming-weight orthogonal adapter.

    .. math:: y = (f(x) - b) D + b \quad(\text{side="output"}),\qquad
              y = f(x D) \quad(\text{side="input"})

    For an ``nn.Linear`` that is :math:`(x W_0^T) D + b` and :math:`(x D) W_0^T + b`.

    **Details:** ``f`` is the base module's own forward and ``b`` its bias (0 without one).
    ``D`` is block diagonal: ``r`` blocks of size ``b = floor(d / r)`` (``d`` = the output
    width on the output side, the input width on the input side: features, or channels of a
    convolution), each holding the weight-k Hamming blocks ``C(n,k) x C(n,k)`` for
    ``k in orders`` and an identity pad; the last ``d - r b`` features pass through.
    ``D = I`` at initialisation for every parametrization.  At most one of ``blocks`` /
    ``block_size``; with neither, ``default_layout`` decides (:func:`default_blocks`:
    ``"compact"``, the default, ``r = max(1, d // 32)``: blocks of about 32; ``"paper"``,
    ``r = max(3, d // 128)``).

    Args:
        base_layer: the module to adapt (its parameters are frozen); any supported base kind
            (:data:`~qiadapters.adapters.hamming.kinds.BASE_KINDS`); ``linear=`` is its
            deprecated name (until qiadapters 0.5).
        orders: Hamming weights, distinct integers ``>= 1``.
        blocks, block_size, n_qubits: the block layout (see :func:`plan_blocks`).
        layout, gate: the circuit for ``parametrization="circuit"``.
        side: ``"output"`` or ``"input"``.
        parametrization: ``"cayley"`` (default), ``"expm"`` or ``"circuit"``.
        share_blocks: one parameter set for all ``r`` blocks.
        default_layout: the layout rule when neither ``blocks`` nor ``block_size`` is given,
            ``"compact"`` or ``"paper"`` (:data:`~qiadapters.adapters.hamming.DEFAULT_LAYOUTS`).
        scale: learn a per-feature scale ``s`` (``d`` values, 1 at init) beside the
            rotation: ``D`` becomes ``D diag(s)`` (output side ``y = (f(x) - b) D diag(s) + b``,
            input side ``y = f(x D diag(s))``); ``s`` lives on the parametrization module.
        recompute_base: output side only: keep ``x`` for the backward instead of ``f(x)``
            and run the base forward again there (:meth:`adapter_forward`); outputs and
            gradients are unchanged.
        adapter_name: the name of this first adapter (more can be added with
            :meth:`add_adapter`; several active ones apply as a product).
        parts: parts built earlier by :meth:`build` (then the options are not used).

    Example::

        >>> layer = HammingAdapter(nn.Linear(64, 64), orders=(1, 2), blocks=2)
        >>> layer.hamming["default"].block_layout.n
        7
    """

    adapter_layer_names = ("hamming",)
    other_param_names = ("side", "recompute_base")
    #: ``"activation"`` (``D`` applied to the activations) or ``"fold"`` (the base run with
    #: the adapted weight, :mod:`.fold_route`); set with :func:`.fold_route.set_route`
    route: str = "activation"

    @renamed_keyword("linear", "base_layer")
    def __init__(self, base_layer: nn.Module, orders: Sequence[int] = (1, 2),
                 blocks: int | None = None, block_size: int | None = None,
                 n_qubits: int | None = None, layout: str = "pyramid", gate: str = "rbs",
                 side: str = "output", parametrization: str = "cayley",
                 share_blocks: bool = False, scale: bool = False,
                 recompute_base: bool = False, *,
                 default_layout: str = DEFAULT_LAYOUT,
                 adapter_name: Optional[str] = "default",
                 parts: Optional[AdapterParts] = None):
        kind = base_kind(unwrap(base_layer))  # an unsupported module raises before any change
        super().__init__(base_layer, adapter_name, parts=parts, orders=orders, blocks=blocks,
                         block_size=block_size, n_qubits=n_qubits, layout=layout, gate=gate,
                         side=side, parametrization=parametrization, share_blocks=share_blocks,
                         recompute_base=recompute_base, scale=scale,
                         default_layout=default_layout)
        #: how this base module is read, rotated and folded (:mod:`.kinds`)
        self.kind: BaseKind = kind

    @classmethod
    def build(cls, base_layer: nn.Module, **options) -> AdapterParts:
        opts = check_options(**options)
        base = unwrap(base_layer)
        kind = base_kind(base)
        side, parametrization, layout = opts["side"], opts["parametrization"], opts["layout"]
        kind.check(base, side)
        d_in, d_out = kind.widths(base)
        block_layout = _plan(d_out if side == "output" else d_in, opts["orders"], opts["blocks"],
                             opts["block_size"], opts["n_qubits"],
                             power_of_two=parametrization == "circuit" and layout == "butterfly",
                             default_layout=opts["default_layout"])
        module = PARAMETRIZATIONS[parametrization](block_layout, gate=opts["gate"], layout=layout,
                                                   share_blocks=opts["share_blocks"],
                                                   scale=opts["scale"])
        return AdapterParts(modules={"hamming": module},
                            settings={"side": side, "recompute_base": opts["recompute_base"]})

    # ------------------------------------------------------------ forward
    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        """``f(x D_in) D_out`` for the active adapters (module docstring).

        When an active output-side adapter has ``recompute_base`` and autograd records the
        call, the base and the output-side maps run inside ``torch.utils.checkpoint``
        (non-reentrant): nothing they would save is kept (``f(x)``, or the output the map
        keeps instead, :mod:`~qiadapters.circuits.about_point`), only their inputs are
        referenced -- ``x``, which the layers reading the same input share, and ``D``'s
        blocks, built before the checkpoint (by the model call's batched build when there is
        one) so the backward does not build them again -- and the backward runs the base and
        the maps forward once more to get what they saved.  The same operations on the same
        values: outputs and gradients are those of the default.  The fold route, merged and
        disabled adapters do not run this path (the first keeps ``x`` and the adapted
        weight, the others run the base alone).
        """
        if self.route == "fold":
            return fold_forward(self, x, adapter_names, *args, **kwargs)
        before = [a for a in adapter_names if self.side[a] == "input"]
        after = [a for a in adapter_names if self.side[a] == "output"]
        h = x
        if before:
            h = self.kind.features_last(x).to(self.adapter_dtype)
            for a in before:
                h = self._rotate(a, h)
            h = self.kind.features_back(h).to(x.dtype)
        if after and torch.is_grad_enabled() and any(self.recompute_base[a] for a in after):
            hint = self.kind.features_last(h)  # the batched build reads its token count
            operands = {a: self._operands(a, hint) for a in after}
            return checkpoint(self._base_then_output, h, after, operands, *args,
                              use_reentrant=False, **kwargs)
        fx = self.base_layer(h, *args, **kwargs)
        return self._rotate_output(fx, after) if after else fx

    def _base_then_output(self, h: torch.Tensor, after: list[str], operands: dict,
                          *args, **kwargs) -> torch.Tensor:
        """``(f(h) - b) D + b`` with the given (unresolved) operands: the part of
        :meth:`adapter_forward` that ``recompute_base`` runs twice."""
        return self._rotate_output(self.base_layer(h, *args, **kwargs), after,
                                   operands=operands)

    def _operands(self, adapter_name: str, x: torch.Tensor):
        """What :meth:`_rotate_output` resolves for one adapter: its share of the model
        call's batched build (:mod:`.batched`), else its own blocks."""
        rot = self.hamming[adapter_name]
        found = batched_operands(rot, x)
        return rot.cached_operands(self.adapter_dtype) if found is None else found

    def adapter_output(self, x: torch.Tensor, base_output: torch.Tensor,
                       adapter_names: list[str], *args, **kwargs):
        """Adapted output from a precomputed ``base_output = f(x)``: output-side maps only
        need ``(f(x) - b) D + b``; an input-side map needs the base applied to ``x D`` (a
        second base call).  The caller holds ``f(x)`` (a mixture shares it among its
        experts), so the backward keeps it rather than the output."""
        if any(self.side[a] == "input" for a in adapter_names):
            return self.adapter_forward(x, adapter_names, *args, **kwargs)
        return self._rotate_output(base_output, adapter_names, keep_output=False)

    def mixed_forward(self, x: torch.Tensor, rows, *args, **kwargs):
        """A mixed-adapter batch (:mod:`~qiadapters.adapters.mixed_batch`): the rows of each
        input-side adapter are rotated, the base module runs once on the whole batch, then
        the rows of each output-side adapter are rotated."""
        groups = row_groups(rows, self.adapter_names, x.device)
        h = x
        for a, idx in groups:
            if self.side[a] == "input":
                z = self._rotate(a, self.kind.features_last(x[idx]).to(self.adapter_dtype))
                h = h.index_copy(0, idx, self.kind.features_back(z).to(x.dtype))
        fx = self.base_layer(h, *args, **kwargs)
        out = fx
        for a, idx in groups:
            if self.side[a] == "output":
                out = out.index_copy(0, idx, self._rotate_output(fx[idx], [a]))
        return out

    def _rotate_output(self, fx: torch.Tensor, adapter_names: list[str],
                       keep_output: bool = True,
                       operands: Optional[dict] = None) -> torch.Tensor:
        """``(f(x) - b) D + b`` for the output-side adapters, computed as ``f(x) D + (b - b D)``
        (``D`` the product of the adapters' maps): the same map with one product and one
        addition over the tokens (``b D`` is one row); at ``D = I`` both products are exact,
        so the output is ``f(x)`` bit for bit (``fl(fl(y - b) + b)`` would not be ``y`` in
        general, e.g. for ``|b| >> |y - b|``).

        With ``keep_output``, when autograd records the call (gradients on, not traced by
        ``torch.compile``, which chooses itself what to keep), each adapter's map is one
        autograd node that keeps its output for the backward instead of ``f(x)``
        (:func:`~qiadapters.circuits.about_point.apply_about`: the layer that follows usually
        keeps the output anyway, so ``f(x)`` is not held for this layer alone); a map with an
        order applied mode-wise keeps ``f(x)``.  ``operands``: each adapter's operands
        (:meth:`_operands`) when they were taken earlier, by name.
        """
        y = self.kind.features_last(fx).to(self.adapter_dtype)
        bias = getattr(self.base_layer, "bias", None)
        bias = None if bias is None else bias.to(y.dtype)
        z, bz = y, bias
        # a graph to keep, built by autograd (torch.compile decides itself what to keep)
        keep_output = (keep_output and torch.is_grad_enabled()
                       and not torch.compiler.is_compiling())
        with without_autocast(y):  # in the adapter's dtype under autocast too
            for a in adapter_names:
                rot = self.hamming[a]
                found = operands[a] if operands else batched_operands(rot, z)
                ops = rot.resolve(z, found)
                if (keep_output and bz is bias and rot.scale is None
                        and about_point.supports(ops)):
                    z = about_point.apply_about(z, bias, ops, rot.block_layout)
                    continue
                z = _scaled(rot, rot(z, operands=ops))
                if bias is not None:
                    bz = _scaled(rot, rot(bz, operands=ops))
            out = z if bias is None or bz is bias else z + (bias - bz)
        return self.kind.features_back(out.to(fx.dtype))

    def _rotate(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:
        """``x D`` for one adapter, with the blocks of the model call's batched build when
        there is one (:mod:`.batched`), else built here."""
        rot = self.hamming[adapter_name]
        with without_autocast(x):  # in the adapter's dtype under autocast too
            return _scaled(rot, rot(x, operands=batched_operands(rot, x)))

    # ------------------------------------------------------------ merge
    def merge_blocker(self, adapter_names: Optional[Sequence[str]] = None) -> Optional[str]:
        """Quantized (packed) weights and modules with their own forward are not merged
        (:meth:`~qiadapters.adapters.hamming.kinds.BaseKind.merge_blocker`)."""
        return self.kind.merge_blocker(unwrap(self.base_layer))

    def fold(self, weights: dict[str, torch.Tensor], adapter_names: list[str],
             inverse: bool = False) -> dict[str, torch.Tensor]:
        """``W -> D^T W`` per output-side adapter and ``W -> W D^T`` per input-side one (the
        bias is untouched), along the weight's output / input axis (:attr:`BaseKind.weight_axes`:
        ``(out, in)`` for ``nn.Linear``, ``(in, out)`` for transformers' ``Conv1D``, the
        channel axes of a convolution); ``inverse`` multiplies by ``D`` instead (``D`` is
        orthogonal; with a scale ``D diag(s)`` is inverted as ``diag(1/s) D^T``).  The blocks
        are built (:meth:`Parametrization.apply_built`), whichever
        route the forward takes.

        Output-side maps compose after the base in the order added; input-side ones before
        it, so the last-added input map is folded first.  The inverse runs the sequence
        backwards.
        """
        after = [a for a in adapter_names if self.side[a] == "output"]
        before = [a for a in adapter_names if self.side[a] == "input"]
        sequence = after + before[::-1]
        out_axis, in_axis = self.kind.weight_axes
        W = weights["weight"]
        for a in (reversed(sequence) if inverse else sequence):
            rot: Parametrization = self.hamming[a]
            if self.side[a] == "output":  # D^T W = (W^T D)^T ; D^-1 W = (W^T D^-1)^T
                W = _fold_map(rot, W.movedim(out_axis, -1), False, inverse).movedim(-1, out_axis)
            else:                         # W D^T ; W D^-T
                W = _fold_map(rot, W.movedim(in_axis, -1), True, inverse).movedim(-1, in_axis)
        return {**weights, "weight": W}

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fold_cache", None)  # the fold route's inference W' (fold_route.py)
        return state

    def delta_matrix(self, adapter_name: str) -> torch.Tensor:
        """The dense ``D`` of one adapter (``d x d``, ``D diag(s)`` with a scale; for
        inspection and tests)."""
        rot = self.hamming[adapter_name]
        return _scaled(rot, rot.dense(self.adapter_dtype))

    def extra_repr(self) -> str:
        d_in, d_out = self.kind.widths(unwrap(self.base_layer))
        route = ", route='fold'" if self.route == "fold" else ""
        return (f"kind={self.kind.name!r}, in_features={d_in}, out_features={d_out}, "
                f"side={self.side}{route}, {super().extra_repr()}")


def _scaled(rot: Parametrization, y: torch.Tensor) -> torch.Tensor:
    """``y diag(s)`` for ``y: (..., d)`` when the adapter learns a scale ``s``, else ``y``."""
    return y if rot.scale is None else y * rot.scale.to(y.dtype)


def _fold_map(rot: Parametrization, x: torch.Tensor, transpose: bool,
              inverse: bool) -> torch.Tensor:
    """``x M`` for the adapter's map ``M = D diag(s)`` (``s = 1`` without a scale), with
    ``x: (..., d)`` and every block built: ``M``, ``M^T = diag(s) D^T``, and for ``inverse``
    ``M^{-1} = diag(1/s) D^T`` or ``M^{-T} = D diag(1/s)``."""
    if rot.scale is None:
        return rot.apply_built(x, transpose != inverse)
    s = rot.scale.to(x.dtype)
    if not inverse:
        return rot.apply_built(x * s, True) if transpose else rot.apply_built(x, False) * s
    return rot.apply_built(x, False) / s if transpose else rot.apply_built(x / s, True)
