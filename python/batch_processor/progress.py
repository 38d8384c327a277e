"""Progress over files and over dbt's nodes: a bar on a terminal (log lines are written above
it, never into it), plain log lines elsewhere (CI, JSON logs)."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

T = TypeVar("T")
log = logging.getLogger(__name__)


def track(
    items: Iterable[T], total: int, description: str, *, json_logs: bool = False
) -> Iterator[T]:
    """Yield ``items`` while reporting progress on stderr."""
    if sys.stderr.isatty() and not json_logs:
        with logging_redirect_tqdm():
            yield from tqdm(items, total=total, desc=description, unit="file", file=sys.stderr)
        return
    step = max(1, total // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            log.info("%s: %d/%d", description, done, total, extra={"done": done, "total": total})


_NODE_LINES = {"level": logging.DEBUG}
_DBT_LEVELS = {"warn": logging.WARNING, "error": logging.ERROR}  # dbt's events worth a line
_dbt_log = logging.getLogger("batch_processor.dbt")


def show_dbt_nodes(enabled: bool) -> None:
    """Whether dbt's node-by-node progress is shown (the CLI's batch commands: yes; a library
    caller or the long-lived CRM worker, whose log is one line per task: only at debug)."""
    _NODE_LINES["level"] = logging.INFO if enabled else logging.DEBUG


class DbtProgress:
    """dbt's node-by-node progress, fed by dbt's event callbacks: a bar on a terminal (the
    logs written above it), one log line per finished node elsewhere (CI, JSON logs). dbt
    calls it from its worker threads. Off (debug lines only) unless show_dbt_nodes(True)."""

    def __init__(self, *, json_logs: bool = False, forward_warnings: bool = False) -> None:
        self._lock = threading.Lock()
        self._forward = forward_warnings
        self._level = _NODE_LINES["level"]
        self._interactive = sys.stderr.isatty() and not json_logs and self._level == logging.INFO
        self._bar: tqdm[None] | None = None
        self._redirect: contextlib.AbstractContextManager[None] | None = None
        self.total = 0
        self.done = 0

    def __call__(self, event: Any) -> None:
        name = event.info.name
        level = _DBT_LEVELS.get(str(event.info.level))
        if self._forward and level is not None and event.info.msg:
            _dbt_log.log(level, "%s", str(event.info.msg).strip())
        if name not in {"LogStartLine", "NodeFinished"}:
            return
        with self._lock:
            if name == "LogStartLine":
                self.total = max(self.total, int(event.data.total))
                if self._interactive and self._bar is None:
                    self._redirect = logging_redirect_tqdm()
                    self._redirect.__enter__()
                    self._bar = tqdm(total=self.total, desc="dbt", unit="node", file=sys.stderr)
                return
            self._finished(event.data)

    def _finished(self, data: Any) -> None:
        node = data.node_info
        self.done += 1
        seconds = float(getattr(data.run_result, "execution_time", 0.0) or 0.0)
        if self._bar is not None:
            self._bar.total = max(self.total, self.done)
            self._bar.set_postfix_str(f"{node.node_name} {node.node_status}", refresh=False)
            self._bar.update(1)
            return
        log.log(
            self._level,
            "dbt %d/%d %s %s (%.2f s)",
            self.done,
            max(self.total, self.done),
            node.unique_id,
            node.node_status,
            seconds,
            extra={
                "done": self.done,
                "total": max(self.total, self.done),
                "node": node.unique_id,
                "node_status": node.node_status,
                "execution_time_s": round(seconds, 3),
            },
        )

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self._redirect is not None:
                self._redirect.__exit__(None, None, None)
                self._redirect = None
