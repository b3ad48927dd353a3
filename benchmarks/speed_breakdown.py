"""Deprecated alias of :mod:`benchmarks.speed.breakdown` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.speed.breakdown")
