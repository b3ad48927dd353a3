"""Deprecated alias of :mod:`benchmarks.physics.bottleneck` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.physics.bottleneck")
