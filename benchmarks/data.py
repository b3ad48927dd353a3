"""Deprecated alias of :mod:`benchmarks.common.data` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.common.data")
