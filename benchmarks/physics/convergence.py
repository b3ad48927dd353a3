"""Part 1 of the physics benchmark (float64): the time steppers' error against the exact
spectral solution over step sizes, with the fitted order, and Poisson against the sparse
direct solve (:mod:`benchmarks.physics.run` says more)."""
from __future__ import annotations

import numpy as np
import torch

import physics


def accuracy(steps_list=(10, 20, 40, 80, 160, 320, 640)) -> dict:
    f64 = torch.float64
    gen = torch.Generator().manual_seed(0)
    rows, orders = [], []
    cases = {"1d-32": (32,), "2d-12x12": (12, 12)}
    for grid_name, shape in cases.items():
        u0 = torch.randn(2, *shape, 2, dtype=f64, generator=gen)
        v0 = torch.randn(2, *shape, 2, dtype=f64, generator=gen)
        kappa, c = torch.tensor([1.0, 0.5], dtype=f64), torch.tensor([1.0, 0.5], dtype=f64)
        t_heat, t_wave = 1.0, 4.0
        exact_heat = physics.heat(u0, kappa, t_heat, "neumann").numpy()
        exact_wave = physics.wave(u0, v0, c, t_wave, "neumann").numpy()
        methods = {
            "euler": lambda s: physics.heat_euler(u0, kappa, t_heat, s) - exact_heat,
            "crank_nicolson": lambda s: physics.heat_crank_nicolson(u0, kappa, t_heat, s)
            - exact_heat,
            "leapfrog": lambda s: physics.wave_leapfrog(u0, v0, c, t_wave, s) - exact_wave,
        }
        for method, err_fn in methods.items():
            t_end = t_wave if method == "leapfrog" else t_heat
            errs = []
            for s in steps_list:
                err = float(np.abs(err_fn(s)).max())
                errs.append(err)
                rows.append(dict(grid=grid_name, method=method, steps=s, dt=t_end / s, error=err))
            # fit on the finer half, where the leading error term dominates
            half = len(steps_list) // 2
            dts = np.array([t_end / s for s in steps_list])[half:]
            slope = float(np.polyfit(np.log(dts), np.log(errs[half:]), 1)[0])
            orders.append(dict(grid=grid_name, method=method, order=slope))
    poisson_rows = []
    for boundary in physics.BOUNDARIES:
        for zero_mode in physics.ZERO_MODES:
            eps = 0.1 if zero_mode == "screened" else None
            f = torch.randn(4, 14, 14, 8, dtype=f64, generator=gen)
            ours = physics.poisson(f, boundary, zero_mode, eps).numpy()
            ref = physics.poisson_sparse(f, boundary, zero_mode, eps)
            poisson_rows.append(dict(boundary=boundary, zero_mode=zero_mode, grid="14x14",
                                     max_abs_error=float(np.abs(ours - ref).max()),
                                     max_abs_solution=float(np.abs(ref).max())))
    return dict(convergence=rows, orders=orders, poisson=poisson_rows)
