"""Configuration of the Hamming (quantum-inspired) adapter family."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from ... import checks
from ...circuits import GATES, LAYOUTS
from ..config import AdapterConfig, option
from .parametrizations import PARAMETRIZATIONS

#: The rules for a layer whose config gives neither ``blocks`` nor ``block_size``, by name:
#: ``(fewest blocks, block size kept on wide layers)``; a ``d``-wide layer gets
#: ``r = max(fewest, d // size)`` blocks of ``floor(d / r)`` features
#: (:func:`~qiadapters.adapters.hamming.default_blocks`).  ``"compact"`` (the default since
#: qiadapters 0.4.0): blocks of about 32 features, OFT's block size; ``"paper"``: 3 blocks
#: below 512 features, blocks of about 128 above (the default of 0.3.x; 0.1-0.2 had 3 blocks
#: on every layer).
DEFAULT_LAYOUTS = {"compact": (1, 32), "paper": (3, 128)}
#: The rule :class:`HammingConfig` and :class:`~qiadapters.HammingAdapter` use unless told.
DEFAULT_LAYOUT = "compact"
#: Fewest blocks and block size of :data:`DEFAULT_LAYOUT` (the paper's are
#: ``DEFAULT_LAYOUTS["paper"]``).
DEFAULT_BLOCKS, DEFAULT_BLOCK_SIZE = DEFAULT_LAYOUTS[DEFAULT_LAYOUT]
#: Sides on which ``D`` can act: after the base layer (the paper) or before it (as OFT does).
SIDES = ("output", "input")
#: Upper bound for the weights named in ``orders`` before ``n`` is known.
_MAX_ORDER = 64


def check_orders(orders) -> tuple[int, ...]:
    """Distinct Hamming weights ``1 <= k <= n``, sorted (weight 0 is a constant 1x1 block;
    ``k <= n`` is checked where a layer's ``n`` is known).  One integer is refused: ``2``
    would mean ``(2,)``, a configuration without order 1, which trains badly."""
    if isinstance(orders, int) and not isinstance(orders, bool):
        fix = (1,) if orders == 1 else (1, orders) if 1 < orders <= _MAX_ORDER else (1, 2)
        raise ValueError(f"orders={orders!r} is one integer, not a sequence of orders; did you "
                         f"mean orders={fix!r}? (list every Hamming weight, order 1 included: "
                         f"without it training collapses)")
    items = orders if isinstance(orders, (list, tuple, set, frozenset, range)) else ()
    bad = [k for k in items
           if isinstance(k, int) and not isinstance(k, bool) and not 1 <= k <= _MAX_ORDER]
    if bad:
        why = "the weight-0 block is the constant [1], so " if bad[0] == 0 else ""
        raise ValueError(f"orders={orders!r} contains {bad[0]}; {why}valid orders are integers "
                         f"1 <= k <= n, the qubits per block (n <= {_MAX_ORDER}; e.g. (1, 2))")
    return checks.orders("orders", orders, _MAX_ORDER, low=1)


def check_options(*, orders=(1, 2), blocks=None, block_size=None,
                  default_layout=DEFAULT_LAYOUT, n_qubits=None, layout="pyramid", gate="rbs",
                  side="output", parametrization="cayley", share_blocks=False,
                  scale=False, recompute_base=False) -> dict[str, Any]:
    """The per-layer options of a Hamming adapter, validated and normalised: the one check
    shared by :class:`HammingConfig` and :meth:`HammingAdapter.build` (checks that need the
    layer's width live in :func:`~qiadapters.adapters.hamming.plan_blocks`)."""
    if blocks is not None and block_size is not None:
        raise ValueError(f"give blocks or block_size, not both (got blocks={blocks}, "
                         f"block_size={block_size})")
    side = checks.choice("side", side, SIDES)
    if checks.flag("recompute_base", recompute_base) and side != "output":
        raise ValueError(f"recompute_base=True is valid with side='output' only (got "
                         f"side={side!r}): it recomputes the base output f(x) that the output "
                         f"side keeps for the backward; the input side keeps no f(x)")
    return {
        "orders": check_orders(orders),
        "blocks": None if blocks is None else checks.integer("blocks", blocks, low=1),
        "block_size": None if block_size is None else checks.integer("block_size", block_size,
                                                                     low=1),
        "default_layout": checks.choice("default_layout", default_layout, DEFAULT_LAYOUTS),
        "n_qubits": None if n_qubits is None else checks.integer("n_qubits", n_qubits, low=2),
        "layout": checks.choice("layout", layout, LAYOUTS),
        "gate": checks.choice("gate", gate, GATES),
        "side": side,
        "parametrization": checks.choice("parametrization", parametrization, PARAMETRIZATIONS),
        "share_blocks": checks.flag("share_blocks", share_blocks),
        "scale": checks.flag("scale", scale),
        "recompute_base": recompute_base,
    }


@dataclass
class HammingConfig(AdapterConfig):
    """Hamming-weight adapter: ``y = (f(x) - b) D + b`` (for an ``nn.Linear``
    ``(x W0^T) D + b``) with ``D`` block-diagonal orthogonal.

    Example::

        cfg = HammingConfig(target_modules=["query", "value"], orders=(1, 2), blocks=3,
                            modules_to_save=["classifier"])
    """

    orders: tuple[int, ...] = option((1, 2), (
        "Hamming weights k of the blocks of D: each block holds C(n,k) x C(n,k) compound "
        "blocks for every k.  (1,) is OFT-like; (1, 2) is the paper's default."))
    blocks: Optional[int] = option(None, (
        "Number r of blocks per layer (block size floor(d / r)).  Give blocks or block_size, "
        "not both; with neither, default_layout decides."))
    block_size: Optional[int] = option(None, (
        "Dimension b of each block (r = floor(d / b) blocks).  Alternative to blocks."))
    default_layout: str = option(DEFAULT_LAYOUT, (
        f"The layout of a layer when neither blocks nor block_size is given (nor a "
        f"layout_pattern entry): one of {list(DEFAULT_LAYOUTS)}.  'compact': blocks of about "
        f"32 features (r = max(1, d // 32) blocks of floor(d / r); fewer, larger blocks when "
        f"the orders or n_qubits need more); 'paper': r = max(3, d // 128) (the paper's 3 "
        f"blocks below 512 features; HammingConfig.paper()).  Saved files record it; files "
        f"saved before qiadapters 0.4.0 load with 'paper', or with blocks=3 before 0.3.0."))
    n_qubits: Optional[int] = option(None, (
        "Qubits n per block; default the largest n with sum_k C(n,k) <= b (for the butterfly "
        "circuit layout: the largest power of two).  The rest of each block is identity."))
    layout: str = option("pyramid", (
        f"Circuit layout for parametrization='circuit': one of {list(LAYOUTS)}.  Recorded "
        f"but unused by the matrix parametrizations."))
    gate: str = option("rbs", (
        f"Two-qubit gate for parametrization='circuit': one of {list(GATES)} (FBS keeps "
        f"block_k == C_k(block_1) for non-adjacent gates)."))
    side: str = option("output", (
        "'output': y = (f(x) - b) D + b with f the base module's own forward, for an "
        "nn.Linear (x W0^T) D + b (the paper; merged weight D^T W0).  'input': y = f(x D), "
        "for an nn.Linear (x D) W0^T + b (merged weight W0 D^T).  On a convolution D acts on "
        "the channels."))
    parametrization: str = option("cayley", (
        f"How the weight-1 block Q is parametrised: one of {list(PARAMETRIZATIONS)}.  "
        f"'cayley' (default) and 'expm' use n(n-1)/2 values of a skew matrix per block; "
        f"'circuit' uses a mirrored pair of circuits V(a) V(b)^T."))
    share_blocks: bool = option(False, (
        "Use one parameter set for all r blocks of a layer."))
    scale: bool = option(False, (
        "Learn a per-feature scale s (d values, initialised to 1) on the axis D acts on: "
        "D is replaced by D diag(s), so the adapter rotates and rescales (output side: per "
        "output channel, as RoAd's and DoRA's magnitudes).  Still the identity at "
        "initialisation and still merged exactly (merged weight diag(s) D^T W0 on the output "
        "side, W0 diag(s) D^T on the input side)."), omit_default=True)
    recompute_base: bool = option(False, (
        "Output side only: keep the layer's input x for the backward instead of its base "
        "output f(x), and run the base forward again in the backward (torch.utils.checkpoint "
        "around the base and D).  Layers that read the same x (query and value) keep it once, "
        "as LoRA does: less training memory for one more base forward per adapted layer "
        "(where nothing else keeps x, as on every linear layer of a transformer, it costs "
        "memory).  Outputs and gradients are unchanged, and so are merged weights, saved "
        "tensors and inference; the fold route, mixtures and mixed-adapter batches keep what "
        "they kept."), omit_default=True)
    layout_pattern: Optional[dict] = option(None, (
        "Per-layer layouts, as peft's rank_pattern: {module-name regex: {field: value}} with "
        "fields blocks / block_size / n_qubits / orders; a layer takes the first key that "
        "matches the end of its name (re.match(rf'(.*\\.)?({key})$', name)) and that "
        "entry's fields replace the config's (blocks replaces block_size and vice versa).  "
        "Every key must match an adapted layer.  Each layer's resolved layout is recorded "
        "in the saved file."), omit_default=True)

    adapter_type: ClassVar[str] = "hamming"
    check_options: ClassVar = staticmethod(check_options)

    @classmethod
    def paper(cls, **fields) -> "HammingConfig":
        """The paper's adapter: orders ``(1, 2)``, Cayley blocks on the output side, in
        ``max(3, d // 128)`` blocks per layer (``default_layout="paper"``), the default of
        qiadapters 0.3.x.  ``fields`` set anything else (``target_modules``...) or override
        these.

        Example::

            cfg = HammingConfig.paper(target_modules=["query", "value"])
        """
        return cls(**{"default_layout": "paper", **fields})
