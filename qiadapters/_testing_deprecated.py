"""Deprecated: the helpers :mod:`qiadapters.testing` held besides the adapter contract.

They belong to the library's own test suite and moved there (``tests/testing_utils.py`` in
the source tree).  :mod:`qiadapters.testing` still serves their old names from here, with a
``DeprecationWarning``, for qiadapters 0.4; this module goes in 0.5.
"""
from __future__ import annotations

import os
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .adapters.layer import AdapterLayer

HOST_SYNC_OPS = ("aten::_local_scalar_dense", "aten::lift_fresh", "aten::nonzero",
                 "aten::masked_select", "aten::unique", "aten::_unique2")


def exit_worker() -> None:
    """Flush stdout and stderr, then leave the process without the interpreter's teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def random_orthogonal(r, n, seed=0, dtype=torch.float64):
    """``(r, n, n)`` random orthogonal matrices, the Q of QR of Gaussian ones (``seed``)."""
    gaussian = torch.randn(r, n, n, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    return torch.linalg.qr(gaussian)[0]


class HostSyncs(TorchDispatchMode):
    """The :data:`HOST_SYNC_OPS` dispatched inside any adapter layer's forward, in ``.ops``."""

    def __init__(self, model):
        super().__init__()
        self.ops, self._inside, self._hooks = [], 0, []
        self._adapter_layers = [m for m in model.modules() if isinstance(m, AdapterLayer)]

    def _count(self, step):
        def hook(*_):
            self._inside += step
        return hook

    def __enter__(self):
        for module in self._adapter_layers:
            self._hooks += [module.register_forward_pre_hook(self._count(1)),
                            module.register_forward_hook(self._count(-1))]
        return super().__enter__()

    def __exit__(self, *exc):
        while self._hooks:
            self._hooks.pop().remove()
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self._inside and func._schema.name in HOST_SYNC_OPS:
            self.ops.append(func._schema.name)
        return func(*args, **(kwargs or {}))
