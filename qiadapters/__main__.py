"""``python -m qiadapters``: the command line (see :mod:`qiadapters.cli`)."""
from .cli import main

raise SystemExit(main())
