r"""Orthonormal spectral bases of the discrete Laplacian, one per boundary condition.

Every boundary is a small object with a basis matrix and the eigenvalues of the negative
second-difference stencil ``-Δ`` (grid spacing ``h = 1``) on ``N`` points.  The basis matrix
``B: (N, N)`` has one *mode per row*: the forward transform is ``û = B u`` and, ``B`` being
orthonormal, the inverse is ``u = B^T û``.  Row ``m`` of ``B`` is an eigenvector of ``-Δ`` with
eigenvalue ``λ_m``, so heat, wave and Poisson are all diagonal in this basis.

* ``neumann`` — ghost points ``u_{-1} = u_0``, ``u_N = u_{N-1}``; DCT-II rows
  ``s_m cos(π m (n+½) / N)`` with ``s_0 = √(1/N)``, ``s_m = √(2/N)``;
  ``λ_m = 4 sin²(π m / 2N)``, ``m = 0..N-1``.
* ``dirichlet`` — ghost points ``u_{-1} = u_N = 0``; DST-I rows
  ``√(2/(N+1)) sin(π k (n+1) / (N+1))`` with ``k = m + 1``; ``λ = 4 sin²(π k / 2(N+1))``,
  ``k = 1..N``.
* ``periodic`` — ghost points ``u_{-1} = u_{N-1}``, ``u_N = u_0``; real Fourier rows
  ``√(1/N)`` (k = 0), ``√(2/N) cos(2π k n / N)`` and ``√(2/N) sin(2π k n / N)`` for
  ``0 < k < N/2``, ``√(1/N) (-1)^n`` for ``k = N/2`` (N even); ``λ = 4 sin²(π k / N)``.

The periodic basis is *real*: the cosine and sine of frequency ``k`` are consecutive rows
(rows ``2k-1`` and ``2k``) and share the eigenvalue ``4 sin²(π k / N)``.  It spans the same
space as the complex orthonormal DFT without complex arithmetic, so every solver works in real
dtypes.  On a 2D grid ``(H, W)`` the basis is the tensor product (rows of ``B_H`` along axis H,
rows of ``B_W`` along axis W) and ``λ_{ij} = λ_i^{(H)} + λ_j^{(W)}``.

Matrices are built with torch in float64 on the target device (on the CPU first for devices
without float64, such as MPS), cast to the requested dtype, and kept in a bounded
least-recently-used cache per ``(kind, boundary, N, dtype, device)`` (:data:`CACHE_SIZE`
entries; :func:`clear_cache` empties it).  Under ``torch.compile`` nothing is read from or
written to the cache: the matrices are built by torch ops inside the graph, so a first
compiled forward for a new size traces cleanly (``fullgraph=True``) from a cold cache.
"""
from __future__ import annotations

from typing import Sequence

import math
from collections import OrderedDict
from typing import Callable

import torch

from qiadapters import checks

__all__ = ["Boundary", "Neumann", "Dirichlet", "Periodic", "BOUNDARIES", "get_boundary",
           "basis", "eigenvalues", "transform", "inverse_transform", "cached", "clear_cache",
           "CACHE_SIZE"]


class Boundary:
    """A boundary condition: a basis builder and its stencil eigenvalues (float64 torch)."""

    name: str = ""

    def basis_matrix(self, n: int, device) -> torch.Tensor:
        """``(n, n)`` orthonormal float64 matrix on ``device``, row ``m`` = eigenvector ``m``
        of ``-Δ``."""
        raise NotImplementedError

    def eigenvalue_vector(self, n: int, device) -> torch.Tensor:
        """``(n,)`` float64 eigenvalues of ``-Δ``, in the row order of :meth:`basis_matrix`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _ar(start: int, stop: int, device) -> torch.Tensor:
    return torch.arange(start, stop, dtype=torch.float64, device=device)


class Neumann(Boundary):
    r"""Zero-flux boundary, DCT-II basis.

    Stencil: ``(Δu)_n = u_{n-1} - 2u_n + u_{n+1}`` with mirrored ghost points ``u_{-1}=u_0``,
    ``u_N=u_{N-1}`` (the wall sits half a cell outside the end points), so ``-Δ`` has diagonal
    ``[1, 2, ..., 2, 1]``.  ``λ_m = 4 sin²(π m / 2N)``, ``m = 0..N-1``; ``λ_0 = 0`` (the mean).
    """

    name = "neumann"

    def basis_matrix(self, n, device):
        m, k = _ar(0, n, device)[:, None], _ar(0, n, device)[None, :]
        scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64, device=device)
        scale[0] = math.sqrt(1.0 / n)
        return scale * torch.cos(math.pi * m * (k + 0.5) / n)

    def eigenvalue_vector(self, n, device):
        return 4.0 * torch.sin(math.pi * _ar(0, n, device) / (2 * n)) ** 2


class Dirichlet(Boundary):
    r"""Zero-value boundary, DST-I basis.

    Stencil: ghost points ``u_{-1} = u_N = 0``, so ``-Δ`` is ``tridiag(-1, 2, -1)``.
    ``λ_k = 4 sin²(π k / 2(N+1))``, ``k = 1..N`` (row ``m`` holds ``k = m+1``); no zero mode.
    """

    name = "dirichlet"

    def basis_matrix(self, n, device):
        k, j = _ar(1, n + 1, device)[:, None], _ar(1, n + 1, device)[None, :]
        return math.sqrt(2.0 / (n + 1)) * torch.sin(math.pi * k * j / (n + 1))

    def eigenvalue_vector(self, n, device):
        return 4.0 * torch.sin(math.pi * _ar(1, n + 1, device) / (2 * (n + 1))) ** 2


class Periodic(Boundary):
    r"""Periodic boundary, real orthonormal Fourier basis.

    Stencil: ``u_{-1} = u_{N-1}``, ``u_N = u_0`` (circulant ``-Δ``).  Rows: the constant
    (``k = 0``), then ``cos`` and ``sin`` of each frequency ``0 < k < N/2`` in turn, then the
    alternating ``(-1)^n`` row (``k = N/2``) when ``N`` is even.  ``λ = 4 sin²(π k / N)``.
    """

    name = "periodic"

    @staticmethod
    def _frequencies(n: int, device) -> torch.Tensor:
        """Row ``m``'s frequency: ``0, 1, 1, 2, 2, ...`` (and ``N/2`` last for even ``N``)."""
        return torch.div(_ar(0, n, device) + 1, 2, rounding_mode="floor")

    def basis_matrix(self, n, device):
        k = self._frequencies(n, device)[:, None]
        j = _ar(0, n, device)[None, :]
        phase = 2 * math.pi * k * j / n
        row = _ar(0, n, device)[:, None]
        # odd rows are cosines, even rows (>= 2) sines; the k = 0 and k = N/2 rows are
        # cosines with weight sqrt(1/N), the others sqrt(2/N)
        single = (k == 0) | (2 * k == n)
        trig = torch.where((row % 2 == 1) | single, torch.cos(phase), torch.sin(phase))
        weight = torch.sqrt(torch.where(single, _ar(1, 2, device), _ar(2, 3, device)) / n)
        return weight * trig

    def eigenvalue_vector(self, n, device):
        return 4.0 * torch.sin(math.pi * self._frequencies(n, device) / n) ** 2


BOUNDARIES: dict[str, Boundary] = {"neumann": Neumann(), "dirichlet": Dirichlet(),
                                   "periodic": Periodic()}


def get_boundary(boundary: str | Boundary) -> Boundary:
    """Look a boundary up by name (a :class:`Boundary` instance passes through)."""
    if isinstance(boundary, Boundary):
        return boundary
    return BOUNDARIES[checks.choice("boundary", boundary, BOUNDARIES)]


#: Bound of the cache of built matrices (bases, eigenvalues, causal prefix tables): the
#: least recently used entry is dropped beyond it.  Each entry is one ``(kind, boundary, N,
#: dtype, device)``; a 1D basis holds ``N²`` numbers, a causal prefix table ``N³``.
CACHE_SIZE = 64
_CACHE: "OrderedDict[tuple, object]" = OrderedDict()


def clear_cache() -> None:
    """Empty the cache of built matrices (they are rebuilt on demand)."""
    _CACHE.clear()


def _float64_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if device.type == "mps" else device


def cached(kind: str, bnd: Boundary, n: int, dtype: torch.dtype, device,
           build: Callable[[Boundary, int, torch.device], object]):
    """``build(bnd, n, device)`` (float64 tensors, or a tuple of them) cast to ``dtype`` on
    ``device``, from the bounded LRU cache (:data:`CACHE_SIZE`).  Under ``torch.compile`` the
    result is built by torch ops inside the graph and the cache is not touched."""
    device = torch.device(device)

    def make():
        out = build(bnd, n, _float64_device(device))
        cast = lambda t: t.to(device=device, dtype=dtype)
        return tuple(cast(t) for t in out) if isinstance(out, tuple) else cast(out)

    if torch.compiler.is_compiling():
        return make()
    key = (kind, bnd.name, type(bnd), n, dtype, device)
    out = _CACHE.get(key)
    if out is None:
        out = _CACHE[key] = make()
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return out


def basis(boundary: str | Boundary, n: int, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Cached orthonormal ``(n, n)`` basis matrix (rows = modes) for one grid axis.

    The returned tensor is shared by all callers: do not modify it in place.
    """
    checks.integer("n", n, low=1)
    return cached("basis", get_boundary(boundary), int(n), dtype, device,
                  lambda b, m, dev: b.basis_matrix(m, dev))


def eigenvalues(boundary: str | Boundary, shape: int | Sequence[int], *, dtype=torch.float64,
                device="cpu") -> torch.Tensor:
    """Eigenvalues of ``-Δ`` on a 1D ``(N,)`` or 2D ``(H, W)`` grid, shaped like the grid.

    On 2D grids ``λ_{ij} = λ_i^{(H)} + λ_j^{(W)}`` (the 5-point stencil is a Kronecker sum).
    """
    bnd = get_boundary(boundary)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    for i, s in enumerate(shape):
        checks.integer(f"shape[{i}]", s, low=1)
    if len(shape) > 2:
        raise ValueError(f"shape={shape!r} has {len(shape)} axes; valid: 1 (sequence) or 2 "
                         f"(H, W)")
    axes = [cached("eig", bnd, int(s), dtype, device, lambda b, m, dev: b.eigenvalue_vector(m, dev))
            for s in shape]
    return axes[0] if len(axes) == 1 else axes[0][:, None] + axes[1][None, :]


def _grid_ndim(u: torch.Tensor) -> int:
    if u.ndim not in (3, 4):
        raise ValueError(f"u.shape={tuple(u.shape)} is not a grid; valid: (batch, L, channels) "
                         f"or (batch, H, W, channels)")
    return u.ndim - 2


def _left(mat: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``mat @ u[b]`` for every batch entry of ``u: (batch, N, C)``, as one GEMM.

    ``torch.matmul(mat, u)`` would broadcast ``mat`` to ``(batch, N, N)`` and copy it for a
    ``bmm``; ``uᵀ matᵀ`` folds the batch into the rows of a single ``mm`` instead (the only
    copy is of the small ``u``).  The result is a transposed view, which reshapes freely.
    """
    b, n, c = u.shape
    flat = u.transpose(1, 2).reshape(b * c, n)
    return (flat @ mat.mT).reshape(b, c, mat.shape[0]).transpose(1, 2)


def _apply(u: torch.Tensor, bnd: Boundary, transpose: bool) -> torch.Tensor:
    """Apply ``B`` (or ``B^T``) along every grid axis of ``u: (batch, *grid, C)``.

    1D: one GEMM.  2D: separable, the H axis on ``u`` seen as ``(batch, H, W*C)``, then the W
    axis on ``(batch*H, W, C)``: ``O(HW(H+W)C)`` multiply-adds, against ``O((HW)^2 C)`` for one
    GEMM with the ``(HW, HW)`` Kronecker basis (timings: ``benchmarks/speed/notes.md``,
    "Measurements behind the code's constants").
    """
    nd = _grid_ndim(u)
    if nd == 1:
        mat = basis(bnd, u.shape[1], dtype=u.dtype, device=u.device)
        return _left(mat.mT if transpose else mat, u)
    b, h, w, c = u.shape
    mh = basis(bnd, h, dtype=u.dtype, device=u.device)
    mw = basis(bnd, w, dtype=u.dtype, device=u.device)
    if transpose:
        mh, mw = mh.mT, mw.mT
    v = _left(mh, u.reshape(b, h, w * c))
    return _left(mw, v.reshape(b * h, w, c)).reshape(b, h, w, c)


def transform(u: torch.Tensor, boundary: str | Boundary = "neumann") -> torch.Tensor:
    """Forward spectral transform ``û = B u`` of ``u: (batch, L, C)`` or ``(batch, H, W, C)``.

    The output has the same shape; entry ``(b, i[, j], c)`` is the coefficient of mode
    ``i`` (``(i, j)`` in 2D) of channel ``c``, whose eigenvalue is ``eigenvalues(...)[i[, j]]``.
    """
    return _apply(u, get_boundary(boundary), transpose=False)


def inverse_transform(u_hat: torch.Tensor, boundary: str | Boundary = "neumann") -> torch.Tensor:
    """Inverse of :func:`transform`: ``u = B^T û`` (the basis is orthonormal)."""
    return _apply(u_hat, get_boundary(boundary), transpose=True)

