"""Deprecated alias of :mod:`benchmarks.common.sweep` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.common.sweep")
