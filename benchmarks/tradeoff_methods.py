"""Deprecated alias of :mod:`benchmarks.tradeoff.methods` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.tradeoff.methods")
