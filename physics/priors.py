r"""Physical priors: spectral operators with learnable positive constants per channel.

A prior owns its constants for ``channels`` channels and returns its *multiplier*
``m(λ): (modes, channels)``, the diagonal of its operator in the eigenbasis of ``-Δ``; the
adapter applies ``B^T (m ⊙ B z)``.  All constants are positive through softplus
(``softplus(ρ) = log(1 + e^ρ)``) and start at the value given by ``init`` arguments.

Add a prior by writing one small class with a ``multiplier`` method and putting it in
:data:`PRIORS`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from qiadapters import checks

from .solvers import ZERO_MODES, heat_multiplier, poisson_multiplier, wave_multipliers

__all__ = ["Prior", "HeatPrior", "WavePrior", "PoissonPrior", "PRIORS", "inverse_softplus",
           "positive_parameter", "check_priors"]


def inverse_softplus(value: float) -> float:
    """``ρ`` with ``softplus(ρ) = value`` (``value > 0``)."""
    return value + math.log(-math.expm1(-value))


def positive_parameter(channels: int, value: float) -> nn.Parameter:
    """A learnable positive constant per channel, stored raw: ``softplus(raw) = value`` at
    init (a prior reads it through ``F.softplus``; name it ``raw_<constant>`` so
    :meth:`Prior.constants` reports it)."""
    return nn.Parameter(torch.full((channels,), inverse_softplus(value)))


class Prior(nn.Module):
    """Base class: ``multiplier(lam: (modes,)) -> (modes, channels)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = checks.integer("channels", channels, low=1)

    def multiplier(self, lam: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def constants(self) -> dict[str, torch.Tensor]:
        """The positive physical constants, after softplus (for logging)."""
        return {name[4:]: F.softplus(p) for name, p in self.named_parameters()
                if name.startswith("raw_")}


class HeatPrior(Prior):
    r"""Heat diffusion ``z_t = κ Δz`` run for time ``t`` from ``z(0) = z``: local smoothing.

    .. math:: m(λ) = \exp(-κ_c\, t_c\, λ)

    Constants per channel: diffusivity ``κ_c = softplus(raw_kappa_c)`` and time
    ``t_c = softplus(raw_t_c)``.  A low-pass filter; the mean (λ = 0) passes unchanged.
    """

    def __init__(self, channels: int, kappa: float = 1.0, t: float = 1.0):
        super().__init__(channels)
        self.raw_kappa = positive_parameter(channels, kappa)
        self.raw_t = positive_parameter(channels, t)

    def multiplier(self, lam):
        lam = lam[:, None]
        return heat_multiplier(lam, F.softplus(self.raw_kappa), F.softplus(self.raw_t))


class WavePrior(Prior):
    r"""Wave propagation ``z_tt = c² Δz`` for time ``t``, ``z(0) = z``, ``z_t(0) = β z``.

    .. math:: m(λ) = \cos(c_c t_c \sqrt{λ}) + β_c \frac{\sin(c_c t_c \sqrt{λ})}{c_c \sqrt{λ}}

    (second term ``β_c t_c`` at ``λ = 0``).  Constants per channel: speed
    ``c_c = softplus(raw_c_c)``, time ``t_c = softplus(raw_t_c)``; the initial-velocity gain
    ``β_c`` is a free real parameter starting at 0.  Oscillatory in ``λ``: it moves
    information a distance ``c t`` across the grid (long range).
    """

    def __init__(self, channels: int, c: float = 1.0, t: float = 1.0):
        super().__init__(channels)
        self.raw_c = positive_parameter(channels, c)
        self.raw_t = positive_parameter(channels, t)
        self.velocity = nn.Parameter(torch.zeros(channels))

    def multiplier(self, lam):
        cos_term, sin_term = wave_multipliers(lam[:, None], F.softplus(self.raw_c),
                                              F.softplus(self.raw_t))
        return cos_term + self.velocity * sin_term


class PoissonPrior(Prior):
    r"""Poisson equilibrium ``-Δz' = g z`` with a learnable source gain: global coupling.

    .. math:: m(λ) = g_c / λ \ (λ > 0),\qquad m(0) = 0
              \qquad\text{or, screened,}\qquad m(λ) = g_c / (λ + ε)

    ``g_c = softplus(raw_gain_c)``.  ``zero_mode`` follows :func:`physics.poisson`:
    ``"zero_mean"`` drops the λ = 0 mode, ``"screened"`` (default here) solves
    ``(-Δ + ε) z' = g z`` with the fixed ``eps`` (a decay length of about ``1/√ε`` cells and a
    gain of at most ``g/ε``, so the low modes of long sequences stay bounded).
    """

    def __init__(self, channels: int, gain: float = 0.1, zero_mode: str = "screened",
                 eps: float = 0.1):
        super().__init__(channels)
        self.zero_mode = checks.choice("zero_mode", zero_mode, ZERO_MODES)
        if not float(eps) > 0:
            raise ValueError(f"eps={eps!r} is not valid; valid: eps > 0")
        self.eps = float(eps)
        self.raw_gain = positive_parameter(channels, gain)

    def multiplier(self, lam):
        return F.softplus(self.raw_gain) * poisson_multiplier(lam[:, None], self.zero_mode,
                                                              self.eps)

    def extra_repr(self) -> str:
        return f"zero_mode={self.zero_mode!r}, eps={self.eps}"


PRIORS: dict[str, type[Prior]] = {"heat": HeatPrior, "wave": WavePrior,
                                  "poisson": PoissonPrior}


def check_priors(priors) -> tuple[str, ...]:
    """Distinct names from :data:`PRIORS`, as a tuple (a single name is accepted)."""
    names = (priors,) if isinstance(priors, str) else priors
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"priors={priors!r} is not valid; give a sequence of names from "
                         f"{list(PRIORS)}") from None
    if not names:
        raise ValueError(f"priors={priors!r} is empty; choose at least one of {list(PRIORS)}")
    for name in names:
        checks.choice("priors", name, PRIORS)
    if len(set(names)) != len(names):
        raise ValueError(f"priors={priors!r} has duplicates; each of {list(PRIORS)} may "
                         f"appear once")
    return names
