r"""The order-2 compound of a batch of blocks as one compiled CPU operation each way.

.. math:: C_2(U)_{(a,b),(c,d)} = U_{ac} U_{bd} - U_{ad} U_{bc}, \qquad a < b, \; c < d

(pairs in lexicographic order), for ``U: (..., n, n)``; backward, with ``G`` the output's
gradient, every minor hands its four entries their cofactors:

.. math:: dU_{ac} \mathrel{+}= G\,U_{bd}, \quad dU_{bd} \mathrel{+}= G\,U_{ac}, \quad
          dU_{ad} \mathrel{-}= G\,U_{bc}, \quad dU_{bc} \mathrel{-}= G\,U_{ad}.

Both are plain loops in C++ over the blocks (``at::parallel_for``, torch's intra-op threads),
wrapped in a C++ ``torch::autograd::Function``: one operator and one autograd node forward,
one backward, with no Python in between.  On a CPU the eager routes of
:mod:`~qiadapters.circuits.compound` spend their time in per-operation overhead at small
sizes (9 operations forward and 13 back for a block of ``n = 8``, each with its autograd
node), and an ``autograd.Function`` written in Python costs about what one differentiable
operation does; this operation costs about that single operation
(``benchmarks/results/README.md``, "Circuits").

A backward that builds a graph (``create_graph=True``: differentiable twice) goes through
the eager gathers instead, built from ``U`` inside the C++ backward, so double backward is
exact too.

The extension is compiled on first use with :func:`torch.utils.cpp_extension.load_inline`
(a C++ compiler and ``ninja`` needed; about a minute once, then loaded from torch's
extension cache, ``$TORCH_EXTENSIONS_DIR``) and only where asked for
(:func:`~qiadapters.circuits.kernels.set_cpu_mode`); :func:`load` returns None when it cannot
be built, and the eager route runs.
"""
from __future__ import annotations

import warnings

import torch

#: The extension's name in torch's cache: bump the suffix when :data:`SOURCE` changes.
NAME = "qiadapters_pair_minors_cpu_v1"

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

static Tensor minors_forward(const Tensor& U_) {
  const Tensor U = U_.contiguous();
  const int64_t n = U.size(-1), m = n * (n - 1) / 2, blocks = U.numel() / (n * n);
  std::vector<int64_t> shape = U.sizes().vec();
  shape[shape.size() - 2] = m;
  shape[shape.size() - 1] = m;
  Tensor out = at::empty(shape, U.options());
  AT_DISPATCH_FLOATING_TYPES(U.scalar_type(), "qiadapters_pair_minors_forward", [&] {
    const scalar_t* u = U.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(m, 1));  // rows
    at::parallel_for(0, blocks * m, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {  // one row pair (a, b) of one block
        const int64_t blk = i / m, x = i % m;
        int64_t a = 0, start = 0;              // x = start(a) + (b - a - 1)
        while (start + (n - 1 - a) <= x) { start += n - 1 - a; ++a; }
        const int64_t b = a + 1 + (x - start);
        const scalar_t* ra = u + blk * n * n + a * n;
        const scalar_t* rb = u + blk * n * n + b * n;
        scalar_t* row = o + i * m;
        for (int64_t c = 0; c < n; ++c)
          for (int64_t d = c + 1; d < n; ++d) *row++ = ra[c] * rb[d] - ra[d] * rb[c];
      }
    });
  });
  return out;
}

static Tensor minors_backward(const Tensor& G_, const Tensor& U_) {
  const Tensor U = U_.contiguous(), G = G_.contiguous();
  const int64_t n = U.size(-1), m = n * (n - 1) / 2, blocks = U.numel() / (n * n);
  Tensor dU = at::zeros_like(U);
  AT_DISPATCH_FLOATING_TYPES(U.scalar_type(), "qiadapters_pair_minors_backward", [&] {
    const scalar_t* u = U.data_ptr<scalar_t>();
    const scalar_t* g = G.data_ptr<scalar_t>();
    scalar_t* du = dU.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(m * m, 1));
    at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {  // a block's dU is written by one thread
        const scalar_t* ub = u + blk * n * n;
        const scalar_t* gb = g + blk * m * m;
        scalar_t* db = du + blk * n * n;
        for (int64_t a = 0; a < n; ++a)
          for (int64_t b = a + 1; b < n; ++b) {
            const scalar_t* ra = ub + a * n;
            const scalar_t* rb = ub + b * n;
            scalar_t* da = db + a * n;
            scalar_t* dbb = db + b * n;
            for (int64_t c = 0; c < n; ++c)
              for (int64_t d = c + 1; d < n; ++d) {
                const scalar_t w = *gb++;
                da[c] += w * rb[d];
                dbb[d] += w * ra[c];
                da[d] -= w * rb[c];
                dbb[c] -= w * ra[d];
              }
          }
      }
    });
  });
  return dU;
}

// The eager gathers (differentiable): the backward of a backward that builds a graph.
static Tensor minors_by_gathers(const Tensor& U, const Tensor& first, const Tensor& second) {
  const Tensor X = U.index_select(-1, first), Y = U.index_select(-1, second);
  return X.index_select(-2, first) * Y.index_select(-2, second)
       - Y.index_select(-2, first) * X.index_select(-2, second);
}

struct PairMinorsCpu : public torch::autograd::Function<PairMinorsCpu> {
  static Tensor forward(AutogradContext* ctx, const Tensor& U, const Tensor& first,
                        const Tensor& second) {
    ctx->save_for_backward({U, first, second});
    return minors_forward(U);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& U = saved[0];
    if (torch::GradMode::is_enabled()) {  // create_graph=True: differentiable twice
      const Tensor out = minors_by_gathers(U, saved[1], saved[2]);
      const Tensor dU = torch::autograd::grad({out}, {U}, {grads[0]}, true, true)[0];
      return {dU, Tensor(), Tensor()};
    }
    return {minors_backward(grads[0], U), Tensor(), Tensor()};
  }
};

Tensor pair_minors(const Tensor& U, const Tensor& first, const Tensor& second) {
  return PairMinorsCpu::apply(U, first, second);
}
"""

_state: dict = {"module": None, "tried": False}


def load():
    """The compiled extension (built on the first call, from torch's cache after that), or
    None if it cannot be built here (no compiler or ``ninja``: warned once)."""
    if not _state["tried"]:
        _state["tried"] = True
        try:
            from torch.utils.cpp_extension import load_inline

            _state["module"] = load_inline(NAME, cpp_sources=[SOURCE],
                                           functions=["pair_minors"],
                                           extra_cflags=["-O3"], verbose=False)
        except Exception as err:  # a missing compiler or ninja: the eager route then
            warnings.warn(f"qiadapters: the CPU pair-minors kernel could not be built "
                          f"({type(err).__name__}: {str(err)[:200]}); the eager route runs",
                          RuntimeWarning, stacklevel=3)
    return _state["module"]


def pair_minors(U: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``C_2(U)`` of ``U: (..., n, n)`` (float32 / float64, on CPU) -> ``(..., C(n,2),
    C(n,2))``; ``first``, ``second``: the pairs' elements (``compound.pair_tables``), read
    only by a backward that builds a graph.  Requires :func:`load` to have succeeded."""
    return load().pair_minors(U, first, second)
