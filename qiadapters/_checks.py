"""Old private name of :mod:`qiadapters.checks` (kept while internal imports move)."""
from .checks import *  # noqa: F401,F403
from .checks import choice, flag, integer, number, orders  # noqa: F401
