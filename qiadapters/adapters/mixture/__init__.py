"""The mixture layer: a router-weighted mixture of adapters (of any families) on one module."""
from ..registry import register
from .config import MixtureConfig
from .layer import EXPERT, Mixture, router_stats
from .routers import ROUTERS, GlobalRouter, Router, SampleRouter, TokenRouter, route

register(MixtureConfig, Mixture)

__all__ = ["MixtureConfig", "Mixture", "EXPERT", "router_stats", "ROUTERS", "Router",
           "GlobalRouter", "SampleRouter", "TokenRouter", "route"]
