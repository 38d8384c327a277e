"""Progress over files: a bar on a terminal, a plain line every few percent elsewhere (CI, logs)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger(__name__)


def track(
    items: Iterable[T], total: int, description: str, *, json_logs: bool = False
) -> Iterator[T]:
    """Yield ``items`` while reporting progress on stderr."""
    if sys.stderr.isatty() and not json_logs:
        yield from tqdm(items, total=total, desc=description, unit="file", file=sys.stderr)
        return
    step = max(1, total // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            log.info("%s: %d/%d", description, done, total, extra={"done": done, "total": total})
