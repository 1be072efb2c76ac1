"""Progress of the offline tools: a tqdm bar on a terminal, a few plain lines anywhere else.

A bar redraws with carriage returns, which turns a log file into noise; when the stream is not a TTY
(`vggt-ros replay ... 2> log`, CI) one line per tenth of the work is written instead, so a long run
still shows it is alive.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Progress:
    """`update(n, **postfix)` per item, `close(**postfix)` at the end. total 0 = unknown (a line per 100)."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, stream: TextIO | None = None,
                 unit: str = "frame") -> None:
        self.total = max(0, int(total))
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._postfix: dict[str, Any] = {}
        self._next_line = self._step()
        self._bar: Any = None
        self._last_line = ""
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total or None, unit=unit, desc=desc, file=self.stream,
                             dynamic_ncols=True)

    def _step(self) -> int:
        return max(1, self.total // 10) if self.total else 100

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        self._postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(self._postfix, refresh=False)
        elif self.done >= self._next_line:
            self._line()
            self._next_line = self.done + self._step()

    def _line(self) -> None:
        of = f"/{self.total}" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self._postfix.items())
        line = f"{self.desc}: {self.done}{of} {self.unit}s{extra}"
        if line != self._last_line:  # the closing line repeats the last one only when numbers changed
            print(line, file=self.stream, flush=True)
            self._last_line = line

    def close(self, **postfix: Any) -> None:
        """Final numbers (e.g. after the last window is flushed) and the bar's end."""
        self._postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=True)
            self._bar.close()
            self._bar = None
        else:
            self._line()
        self.enabled = False
