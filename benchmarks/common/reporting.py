"""Result rows written as CSV: the one writer of every benchmark's ``.csv`` files."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Optional, Sequence


def columns(rows: Sequence[dict]) -> list[str]:
    """Every key of ``rows`` in first-seen order (rows of the same keys: the first row's)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return keys


def write_csv(path: Path, rows: Iterable[dict], fields: Optional[Sequence[str]] = None,
              ignore_extra: bool = False) -> Path:
    """``rows`` as CSV at ``path`` (its folder created): a header of ``fields`` (default
    :func:`columns` of the rows), then one line per row, a missing key an empty cell.  A key
    that is not a column is an error unless ``ignore_extra``.  Returns ``path``."""
    path = Path(path)
    if fields is None:
        rows = list(rows)
        fields = columns(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields),
                                extrasaction="ignore" if ignore_extra else "raise")
        writer.writeheader()
        writer.writerows(rows)
    return path
