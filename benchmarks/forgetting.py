"""Deprecated alias of :mod:`benchmarks.common.forgetting` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.common.forgetting")
