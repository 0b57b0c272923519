"""A byte-rate progress bar on stderr that appears only when the work lasts more than a second."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

DELAY = 1.0


class ByteProgress:
    """The engine's ProgressReporter, drawn with rich; silent when stderr is not a terminal or `quiet`.

    rich is imported only once the bar is due, so short runs and scripts do not pay for it.
    """

    def __init__(self, quiet: bool = False, *, items: bool = False) -> None:
        self._enabled = not quiet and sys.stderr.isatty()
        self._items = items  # counting things (mirrors), not bytes: "12/200" rather than "12 B/200 B"
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._done = 0
        self._total = 0
        self._label = ""
        self._started_at = 0.0

    def begin(self, total: int, label: str) -> None:
        self._done, self._total, self._label = 0, total, label
        self._started_at = time.monotonic()

    def advance(self, amount: int) -> None:
        if not self._enabled:
            return
        with self._lock:
            self._done += amount
            if self._progress is None:
                if time.monotonic() - self._started_at >= DELAY:
                    self._show()
                return
            assert self._task is not None
            self._progress.update(self._task, completed=self._done)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        amount = (MofNCompleteColumn(),) if self._items else (DownloadColumn(), TransferSpeedColumn())
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            *amount,
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        from cli.render.table import escape  # a label may hold a file's name: no escapes, no markup

        self._task = self._progress.add_task(escape(self._label), total=self._total, completed=self._done)

    def end(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
