r"""Triton kernels for the two hot operations of a Hamming adapter on a GPU, and when they run.

* :mod:`.pair_minors_triton` -- the order-2 compound of a batch of blocks,
  ``C_2(U)[(a,b),(c,d)] = U_ac U_bd - U_ad U_bc`` over the pairs ``a < b``, ``c < d`` in
  lexicographic order, forward and backward, one launch each;
* :mod:`.block_product_triton` -- ``x B`` (or ``x B^T``) per diagonal block, ``x: (..., r, m)``,
  ``B: (r, m, p)``, forward and both gradients, one launch each, read from and written to
  the activations' own layout (no transposed copies around a ``bmm``).

Each is a ``torch.autograd.Function`` computing exactly what the eager route computes
(:class:`~qiadapters.circuits.compound.PairMinors`,
:func:`~qiadapters.circuits.apply.per_block_product`), called from one dispatch point in
each of those modules.  :func:`use_kernels` decides, per call, from shapes, dtypes, the
device type and the mode (:func:`set_mode`, :func:`using`, or the environment variable
``QIADAPTERS_TRITON``):

* ``"off"`` (the default): never.  The kernels are checked in Triton's interpreter on CPU
  only; until they have been checked on a GPU they run only where asked for;
* ``"auto"``: CUDA tensors, when ``triton`` imports;
* ``"on"``: every tensor Triton can run on -- CUDA, and CPU under ``TRITON_INTERPRET=1``
  (Triton's interpreter; how the tests check the kernels without a GPU).

**On a CPU**, :mod:`.pair_minors_cpu` is the same order-2 compound as one compiled C++
operation each way (no Triton: ``torch.utils.cpp_extension``, built on first use), for the
small blocks whose eager build is bound by per-operation overhead.  Its own switch,
:func:`set_cpu_mode` (:func:`using_cpu` for a block) or ``QIADAPTERS_CPU_KERNELS``: ``"off"`` (the default: building it
takes a C++ compiler, ``ninja`` and about a minute, once per machine) or ``"on"``; float32
and float64, differentiable twice (a backward that builds a graph goes through the eager
gathers).  Where it cannot be built it warns once and the eager route runs.

Never inside ``torch.compile`` (inductor writes its own kernels for the eager route's
operations), never for double backward (the kernels' backward is not differentiable), only
for float32 (the adapters' compute dtype for float32, float16 and bfloat16 bases; the
compound also for float64).  ``triton`` is imported on the first call that could use it,
never when ``qiadapters`` is imported.

The kernels call Triton builtins only, none of ``triton.language``'s own ``@jit`` helpers
(``tl.zeros``: ``tl.full`` instead): where ``triton.language`` was imported before
``TRITON_INTERPRET=1`` was set (another library's kernels), the interpreter cannot call them.
"""
from .dispatch import (CPU_MODES, MODES, PAIR_DTYPES, available, block_product,
                       block_product_supported, cpu_pair_minors, get_cpu_mode, get_mode,
                       pair_minors, pair_minors_supported, set_cpu_mode, set_mode,
                       use_cpu_kernel, use_kernels, using, using_cpu)

__all__ = ["CPU_MODES", "MODES", "PAIR_DTYPES", "available", "block_product",
           "block_product_supported", "cpu_pair_minors", "get_cpu_mode", "get_mode",
           "pair_minors", "pair_minors_supported", "set_cpu_mode", "set_mode", "use_cpu_kernel",
           "use_kernels", "using", "using_cpu"]
