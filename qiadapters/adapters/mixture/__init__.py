"""The mixture layer: a router-weighted mixture of adapters (of any families) on one module."""
from ..base import register
from .config import MixtureConfig
from .layer import ExpertSpec, Mixture, router_stats
from .routers import ROUTERS, GlobalRouter, Router, SampleRouter, TokenRouter, route

register(MixtureConfig, Mixture)

__all__ = ["MixtureConfig", "Mixture", "ExpertSpec", "router_stats", "ROUTERS", "Router",
           "GlobalRouter", "SampleRouter", "TokenRouter", "route"]
