"""Deprecated alias of :mod:`benchmarks.speed.minilm` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.speed.minilm")
