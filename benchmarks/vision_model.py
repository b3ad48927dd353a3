"""Deprecated alias of :mod:`benchmarks.vision.model` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.vision.model")
