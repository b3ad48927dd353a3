"""Deprecated alias of :mod:`benchmarks.common.timing` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.common.timing")
