"""Deprecated alias of :mod:`benchmarks.vision.figures` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.vision.figures")
