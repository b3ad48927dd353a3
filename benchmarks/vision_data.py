"""Deprecated alias of :mod:`benchmarks.vision.data` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.vision.data")
