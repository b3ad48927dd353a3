"""The block-diagonal map ``D`` of a Hamming adapter, one name for its three modules.

The path from the blocks to the output runs one way through them:

* :mod:`~qiadapters.circuits.block_layout` -- :class:`BlockLayout`, the sizes of ``D``;
* :mod:`~qiadapters.circuits.operands` -- the blocks as :class:`Compounds` (built on demand)
  or :class:`Operands` (routes chosen), :func:`plan_route` (the one choice of route),
  :func:`resolve`, :func:`assemble`;
* :mod:`~qiadapters.circuits.apply` -- :func:`apply_blocks` (the one way ``D`` is applied),
  its kernels, and :func:`dense`.

Every name this module held is importable from here.  The names are the implementation's:
to switch a route (a test, an ablation), patch the cost model where :func:`plan_route` reads
it, ``qiadapters.circuits.operands.use_modewise`` / ``use_whole``; rebinding a name here
changes nothing else.
"""
from .apply import (_width, apply_block, apply_blocks, apply_head, apply_whole, dense,
                    per_block_product)
from .basis import block_dim
from .block_layout import BlockLayout
from .compound import compounds
from .modewise import apply_compound, mode_tables
from .operands import (AssembleBlocks, Compounds, ModeWise, Operands, Route, assemble,
                       plan_route, resolve)
from .route_cost import use_modewise, use_whole

__all__ = ["BlockLayout", "Compounds", "ModeWise", "Operands", "Route", "plan_route",
           "resolve", "assemble", "AssembleBlocks", "apply_blocks", "apply_head",
           "apply_block", "apply_whole", "per_block_product", "dense"]
