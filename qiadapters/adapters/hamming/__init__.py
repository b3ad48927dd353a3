"""Hamming-weight (quantum-inspired) adapters: config, layer, parametrizations."""
from ..registry import register
from .config import (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS, DEFAULT_LAYOUT, DEFAULT_LAYOUTS,
                     HammingConfig)
from .fold_route import ROUTES, set_route
from .layer import HammingAdapter, default_blocks, plan_blocks
from .parametrizations import PARAMETRIZATIONS, Cayley, CircuitPair, Expm, Parametrization

register(HammingConfig, HammingAdapter)

__all__ = ["HammingConfig", "HammingAdapter", "plan_blocks", "default_blocks", "PARAMETRIZATIONS",
           "Parametrization", "Cayley", "Expm", "CircuitPair", "DEFAULT_BLOCKS",
           "DEFAULT_BLOCK_SIZE", "DEFAULT_LAYOUT", "DEFAULT_LAYOUTS", "ROUTES", "set_route"]
