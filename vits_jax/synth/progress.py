"""One progress bar for every long host loop (sentences in `speak`, steps in training, rows in a corpus).

A tqdm bar on standard error when it is enabled, there is more than one item, stderr is a terminal
and tqdm is installed. Off a terminal (a log file, a pipe, a job scheduler), a caller that passes
`every=SECONDS` gets a plain line on stderr at most every SECONDS and one at the end
(``progress: 37/120 rows (31%), 52 audio s, 3.1 audio s/s``); otherwise a no-op object with the
same methods, so callers never branch.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

__all__ = ["progress_bar"]


class _Null:
    """Stands in for a tqdm bar: accepts its calls, draws nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_postfix_str(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines(_Null):
    """Progress as a plain line on `file` at most every `every` seconds of `clock`, and at close."""

    def __init__(self, total: int, unit: str, initial: int, every: float, file,
                 clock: Callable[[], float]):
        self.total, self.unit, self.n, self.every, self.file, self.clock = total, unit, initial, every, file, clock
        self.postfix = ""
        self.last = clock()
        self.shown = None

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def _line(self) -> None:
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        print(f"progress: {self.n}/{self.total} {self.unit}s{share}"
              + (f", {self.postfix}" if self.postfix else ""), file=self.file, flush=True)
        self.shown = self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._line()

    def close(self) -> None:
        if self.shown != self.n and self.n:
            self._line()


def progress_bar(total: int, enabled: bool = True, *, unit: str = "it", initial: int = 0,
                 every: Optional[float] = None, clock: Callable[[], float] = time.monotonic, **tqdm_options):
    """-> a tqdm bar counting `total` `unit`s from `initial`, plain lines every `every` seconds
    off a terminal (when given), or a no-op stand-in (see module doc)."""
    if enabled and total > 1 and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, **tqdm_options)
    if enabled and total > 0 and every is not None and not sys.stderr.isatty():
        return _Lines(total, unit, initial, float(every), sys.stderr, clock)
    return _Null()
