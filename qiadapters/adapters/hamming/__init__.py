"""Hamming-weight (quantum-inspired) adapters: config, layer, parametrizations."""
from ..registry import register
from .config import DEFAULT_BLOCKS, HammingConfig
from .layer import HammingAdapter, plan_blocks
from .parametrizations import PARAMETRIZATIONS, Cayley, CircuitPair, Expm, Parametrization

register(HammingConfig, HammingAdapter)

__all__ = ["HammingConfig", "HammingAdapter", "plan_blocks", "PARAMETRIZATIONS", "Parametrization",
           "Cayley", "Expm", "CircuitPair", "DEFAULT_BLOCKS"]
