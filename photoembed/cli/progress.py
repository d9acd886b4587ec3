"""A one-line progress display on stderr for long CLI jobs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from photoembed.cli.output import human_duration


class ProgressLine:
    """Redraws one line (count, rate, ETA) at most a few times a second; silent when not a terminal."""

    def __init__(self, stream: TextIO | None = None, *, min_interval_s: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._width = 0

    def update(self, *, done: int, total: int, rate: float, eta_s: float | None, note: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.min_interval_s and done < total):
            return
        self._last = now
        if total > 0:
            text = f"{bar(done, total)} {done}/{total}  {rate:5.1f} photos/s  ETA {human_duration(eta_s)}"
        else:
            text = f"{done} …"
        if note:
            text += f"  {note}"
        self._write(text)

    def message(self, text: str) -> None:
        if self.enabled:
            self._write(text)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _write(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)


def bar(done: float, total: float, width: int = 24) -> str:
    """``[#####.....]``: the share of ``total`` that is done."""
    filled = min(width, int(width * done / total)) if total > 0 else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"
