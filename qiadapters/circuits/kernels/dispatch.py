"""When the Triton kernels run (the package docstring), and the calls the eager modules make.

Nothing here imports ``triton`` at module level: :func:`available` tries it once, on the first
call that could use a kernel, and the kernels' modules are imported by :func:`pair_minors` /
:func:`block_product` only when one runs.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
import torch

#: The modes of :func:`set_mode` (and of the environment variable ``QIADAPTERS_TRITON``).
MODES = ("auto", "on", "off")
ENV = "QIADAPTERS_TRITON"
#: The mode when neither :func:`set_mode` nor the environment says: off until the kernels
#: have been checked on a GPU (they are checked in Triton's interpreter on CPU).
DEFAULT_MODE = "off"
#: The dtypes the compound kernel takes (the block product: float32 only).
PAIR_DTYPES = (torch.float32, torch.float64)

_state: dict = {"mode": None, "available": None, "cpu_mode": None}
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _checked(mode: str, source: str, modes=MODES, what: str = "Triton kernel") -> str:
    if mode not in modes:
        raise ValueError(f"{source}={mode!r} is not a {what} mode; valid: {', '.join(modes)}")
    return mode


def get_mode() -> str:
    """The current mode: the last :func:`set_mode`, else ``$QIADAPTERS_TRITON``, else
    :data:`DEFAULT_MODE`."""
    if _state["mode"] is None:
        _state["mode"] = _checked(
            os.environ.get(ENV, DEFAULT_MODE).strip().lower() or DEFAULT_MODE, ENV)
    return _state["mode"]


def set_mode(mode: str) -> str:
    """Set the mode (``"auto"``, ``"on"``, ``"off"``; package docstring) for this process;
    returns the previous one."""
    previous = get_mode()
    _state["mode"] = _checked(mode, "mode")
    return previous


@contextmanager
def _scoped(key: str, setter, mode: str):
    """``setter(mode)`` inside the block, ``_state[key]`` restored to the previous one after."""
    previous = setter(mode)
    try:
        yield
    finally:
        _state[key] = previous


def using(mode: str):
    """``with using("off"): ...``: the mode inside the block, the previous one after it."""
    return _scoped("mode", set_mode, mode)


def available() -> bool:
    """Whether ``triton`` imports (tried once per process)."""
    if _state["available"] is None:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
            _state["available"] = True
        except Exception:  # ImportError, or a broken install: the eager route then
            _state["available"] = False
    return _state["available"]


def _runs_on(device: torch.device, mode: str) -> bool:
    if device.type == "cuda":
        return True
    return mode == "on" and device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def use_kernels(*tensors: torch.Tensor, dtypes=(torch.float32,)) -> bool:
    """Whether a kernel takes these tensors: the mode allows it on their device (all on one
    device), every dtype in ``dtypes``, plain tensors (no tensor subclass: a trace's fake
    tensors), not inside ``torch.compile``, and ``triton`` imports.  A choice on the device
    type, dtypes and mode only (no data, no sync)."""
    mode = get_mode()
    if mode == "off":
        return False
    device = tensors[0].device
    if not _runs_on(device, mode) or torch.compiler.is_compiling():
        return False
    if any(t.device != device or t.dtype not in dtypes or type(t) not in _PLAIN
           for t in tensors):  # a subclass (a fake tensor of a trace, ...): the eager route
        return False
    return available()


def pair_minors(U: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """:func:`~qiadapters.circuits.compound.pair_minors` by the Triton kernel:
    ``U: (..., n, n)`` -> ``(..., C(n,2), C(n,2))``."""
    from .pair_minors_triton import TritonPairMinors

    return TritonPairMinors.apply(U, first, second)


def block_product(x: torch.Tensor, B: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """:func:`~qiadapters.circuits.apply.per_block_product` by the Triton kernel:
    ``x: (..., r, m)``, ``B: (r, m, p)`` -> ``(..., r, p)`` (``B: (r, p, m)`` with
    ``transpose``)."""
    from .block_product_triton import TritonBlockProduct

    return TritonBlockProduct.apply(x, B, bool(transpose))


def block_product_supported(x: torch.Tensor, B: torch.Tensor,
                            transpose: bool = False) -> bool:
    """Whether the shapes suit :func:`block_product`: ``x: (..., r, m)`` with at least one
    row, ``B: (r, m, p)`` (``(r, p, m)`` with ``transpose``)."""
    if x.dim() < 2 or B.dim() != 3 or x.numel() == 0 or B.numel() == 0:
        return False
    inner = B.shape[2] if transpose else B.shape[1]
    return x.shape[-2] == B.shape[0] and x.shape[-1] == inner


#: The modes of :func:`set_cpu_mode` (and of the environment variable ``QIADAPTERS_CPU_KERNELS``).
CPU_MODES = ("on", "off")
CPU_ENV = "QIADAPTERS_CPU_KERNELS"
#: The mode when neither :func:`set_cpu_mode` nor the environment says: off, because the
#: kernel is compiled on first use (a C++ compiler and about a minute, once).
DEFAULT_CPU_MODE = "off"
#: The dtypes the compiled CPU kernel takes.
CPU_DTYPES = (torch.float32, torch.float64)
#: The most output entries (all blocks together) the CPU kernel builds; above it the eager
#: route's vectorised row slabs are faster (one thread, ``benchmarks/results/circuits.csv``:
#: the kernel wins up to 895k entries, (n, r) = (44, 1), and loses from 2.7M, (44, 3)).
CPU_KERNEL_MAX_ENTRIES = 1_000_000


def get_cpu_mode() -> str:
    """The CPU kernel's mode: the last :func:`set_cpu_mode`, else ``$QIADAPTERS_CPU_KERNELS``,
    else :data:`DEFAULT_CPU_MODE`."""
    if _state["cpu_mode"] is None:
        mode = os.environ.get(CPU_ENV, DEFAULT_CPU_MODE).strip().lower() or DEFAULT_CPU_MODE
        _state["cpu_mode"] = _checked(mode, CPU_ENV, CPU_MODES, "CPU kernel")
    return _state["cpu_mode"]


def set_cpu_mode(mode: str) -> str:
    """Switch the compiled CPU kernel of the order-2 compound ``"on"`` or ``"off"`` for this
    process (package docstring); returns the previous mode.  ``"on"`` builds it on the first
    call that uses it."""
    _checked(mode, "mode", CPU_MODES, "CPU kernel")
    previous = get_cpu_mode()
    _state["cpu_mode"] = mode
    return previous


def using_cpu(mode: str):
    """``with using_cpu("on"): ...``: the CPU kernel's mode inside the block, the previous
    one after it."""
    return _scoped("cpu_mode", set_cpu_mode, mode)


def use_cpu_kernel(U: torch.Tensor) -> bool:
    """Whether the compiled CPU kernel takes ``U``: the CPU mode is on, ``U`` is a plain CPU
    tensor of a dtype in :data:`CPU_DTYPES` whose compound has at most
    :data:`CPU_KERNEL_MAX_ENTRIES` entries, not inside ``torch.compile``, and the extension
    builds (tried once).  A choice on the mode, shapes, device type and dtype only."""
    if get_cpu_mode() != "on" or U.device.type != "cpu" or U.dtype not in CPU_DTYPES:
        return False
    n = U.shape[-1]
    if U.numel() // max(n * n, 1) * (n * (n - 1) // 2) ** 2 > CPU_KERNEL_MAX_ENTRIES:
        return False
    if type(U) not in _PLAIN or torch.compiler.is_compiling():
        return False
    from . import pair_minors_cpu

    return pair_minors_cpu.load() is not None


def cpu_pair_minors(U: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """:func:`~qiadapters.circuits.compound.pair_minors` by the compiled CPU kernel."""
    from . import pair_minors_cpu

    return pair_minors_cpu.pair_minors(U, first, second)


#: The largest ``n`` :func:`pair_minors` takes (its backward holds a row tile of ``dU``).
PAIR_MAX_N = 64


def pair_minors_supported(U: torch.Tensor) -> bool:
    """Whether :func:`pair_minors` takes ``U: (..., n, n)``: ``2 <= n <= PAIR_MAX_N``, at
    least one block."""
    return 2 <= U.shape[-1] <= PAIR_MAX_N and U.numel() > 0
