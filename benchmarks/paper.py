"""Deprecated alias of :mod:`benchmarks.common.paper` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.common.paper")
