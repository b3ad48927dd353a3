"""The circuits benchmark's measurements: one (n, k, r) case of the compiled Hamming blocks
against the minors-by-determinant construction and the floors, and PennyLane's block against
ours (:mod:`benchmarks.circuits.run` says what each column is)."""
from __future__ import annotations

import math

import torch

import qiadapters as qa

from qiadapters.circuits import kernels

from ..common.paper import minors_compound
from ..common.timing import interleaved

SIZES = [(8, 2), (11, 3), (13, 2), (13, 3), (22, 2), (44, 2), (64, 2)]
PENNYLANE_SIZES = [(8, 2), (10, 2), (11, 3)]


def pennylane_block(circuit, theta, k):
    return qa.pennylane.hamming_block(circuit, theta, k)


def kernel_built() -> bool:
    """Whether the compiled CPU kernel of the order-2 compound builds here (built once)."""
    from qiadapters.circuits.kernels import pair_minors_cpu

    return pair_minors_cpu.load() is not None


def with_cpu_kernel(fn):
    """``fn`` run with the compiled CPU kernel switched on (the switch included in its time)."""
    def run(x):
        with kernels.using_cpu("on"):
            return fn(x)
    return run


def run_case(n: int, k: int, r: int, budget: float) -> dict:
    gen = torch.Generator().manual_seed(n * 100 + k * 10 + r)
    circuit = qa.Circuit.pyramid(n)
    op = circuit.compile(orders=(k,), blocks=r)
    theta = torch.randn(r, circuit.n_params, generator=gen) * 0.3
    Q = torch.linalg.qr(torch.randn(r, n, n, generator=gen))[0]
    Qg, tg = Q.clone().requires_grad_(), theta.clone().requires_grad_()
    m = math.comb(n, k)
    out = torch.empty(r, m, m)

    def fb(fn, x):
        def step():
            fn(x).sum().backward()
            x.grad = None
        return step

    def no_grad(fn, x):
        def step():
            with torch.no_grad():
                fn(x)
        return step

    contenders = {
        "floor": lambda: torch.ones(r, m, m),
        "floor_prealloc": lambda: out.fill_(1.0),
        "autograd_floor_fb": fb(lambda q: q[:, :1, :1].expand(r, m, m).clone(), Qg),
        "ours_matrix_fwd": no_grad(lambda q: qa.compound(q, k), Q),
        "ours_matrix_fb": fb(lambda q: qa.compound(q, k), Qg),
        "ours_angles_fwd": no_grad(lambda t: op(t)[0], theta),
        "ours_angles_fb": fb(lambda t: op(t)[0], tg),
        "minors_fwd": no_grad(lambda q: minors_compound(q, k), Q),
        "minors_fb": fb(lambda q: minors_compound(q, k), Qg),
    }
    if kernel_built():  # the same compound with the compiled CPU kernel switched on
        contenders["ours_kernel_fwd"] = no_grad(with_cpu_kernel(lambda q: qa.compound(q, k)), Q)
        contenders["ours_kernel_fb"] = fb(with_cpu_kernel(lambda q: qa.compound(q, k)), Qg)
    t = interleaved(contenders, reps=7, warmup=2, min_reps=3, budget_s=budget)
    row = dict(n=n, k=k, r=r, block=m, **t.medians(), threads=t.threads)
    torch.testing.assert_close(qa.compound(Q, k), minors_compound(Q, k), atol=1e-4, rtol=0)
    if "ours_kernel_fb" in contenders:
        torch.testing.assert_close(with_cpu_kernel(lambda q: qa.compound(q, k))(Q),
                                   minors_compound(Q, k), atol=1e-4, rtol=0)
    return row


def run_pennylane(n: int, k: int) -> dict:
    circuit = qa.Circuit.pyramid(n)
    theta = torch.randn(circuit.n_params, dtype=torch.float64)
    op = circuit.compile(orders=(k,), blocks=1, dtype=torch.float64)
    # PennyLane is far too slow to repeat: one timed call, no warm-up.
    pl = interleaved({"pl": lambda: pennylane_block(circuit, theta, k)}, reps=1, warmup=0)
    ours = interleaved({"ours": lambda: op(theta[None])[0]}, reps=20, warmup=2, min_reps=3,
                       budget_s=20.0).median("ours")
    err = (op(theta[None])[0][0] - pennylane_block(circuit, theta, k)).abs().max().item()
    return dict(n=n, k=k, block=math.comb(n, k), pennylane=pl.median("pl"),
                ours_angles_fwd=ours, speedup=pl.median("pl") / ours, max_abs_diff=err,
                threads=pl.threads)
