"""One progress bar for every long host loop (sentences in `speak`, steps in training).

A tqdm bar on standard error when it is enabled, there is more than one item, stderr is a terminal
and tqdm is installed; otherwise a no-op object with the same methods, so callers never branch.
"""

from __future__ import annotations

import sys

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


def progress_bar(total: int, enabled: bool = True, *, unit: str = "it", initial: int = 0, **tqdm_options):
    """-> a tqdm bar counting `total` `unit`s from `initial`, or a no-op stand-in (see module doc)."""
    if enabled and total > 1 and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, **tqdm_options)
    return _Null()
