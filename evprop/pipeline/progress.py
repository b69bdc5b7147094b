"""Progress for people and for CI: a one-line bar with rate and ETA on a terminal, and JSON-lines logs.

On a terminal (stderr is a TTY) `ProgressBar` redraws one line; elsewhere (CI, files) it stays silent and the
stages' per-epoch log lines (with their own ETA) carry the progress. `JsonLinesHandler` writes every log record as
one JSON object per line, with the fields a stage attached (`extra={"event": ..., ...}`).
"""

from __future__ import annotations

import json
import logging
import sys
import time


class ProgressBar:
    """`bar = ProgressBar("epoch 3/40", total=1600, unit="samples"); bar.update(32); ...; bar.close()`."""

    WIDTH = 30

    def __init__(self, label: str, total: int, unit: str = "samples", stream=None, enabled: bool | None = None):
        self.label, self.total, self.unit = label, max(int(total), 1), unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter()

    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        if self.enabled:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        filled = int(self.WIDTH * self.done / self.total)
        return (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} "
                f"{rate:.0f} {self.unit}/s ETA {eta:.0f} s")

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (len(self.line()) + 2) + "\r")
            self.stream.flush()


def terminal_bar(label: str, total: int, unit: str = "samples") -> ProgressBar:
    """A progress bar drawn only on a terminal and when informational output is wanted (not with --quiet)."""
    return ProgressBar(label, total, unit=unit,
                       enabled=sys.stderr.isatty() and logging.getLogger("evprop").isEnabledFor(logging.INFO))


class JsonLinesHandler(logging.Handler):
    """Every record as one JSON line: time, level, logger, message, and any extra fields of the record."""

    STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self, path):
        super().__init__()
        self.handle_file = open(path, "a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        entry = {"time": record.created, "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in self.STANDARD})
        self.handle_file.write(json.dumps(entry, default=str) + "\n")
        self.handle_file.flush()

    def close(self) -> None:
        self.handle_file.close()
        super().close()
