"""Deprecated alias of :mod:`benchmarks.speed.report` (moved there); import that instead."""
from .common.alias import alias

alias(__name__, "benchmarks.speed.report")
