"""Deprecated alias of :mod:`benchmarks.common.training` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.common.training")
