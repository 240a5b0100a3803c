"""Progress lines: one format for the CLI, the magic and anything else that reports an export's steps."""
from __future__ import annotations

import sys
import time


def progress_line(prefix: str, elapsed: float, step: str, fraction: float | None = None) -> str:
    """``"hierx:   3.2s [ 55%] dynamo: translating the graph to ONNX"`` (the percentage when known)."""
    done = f"[{fraction:4.0%}] " if fraction is not None else " " * 7
    return f"{prefix}: {elapsed:5.1f}s {done}{step}"


class StderrProgress:
    """A ``progress(step, fraction=None)`` callback for ``hierx_nb.export`` printing timed lines to stderr.

    ``step`` is the last step reported and ``elapsed`` the seconds since the callback was made.
    """

    def __init__(self, prefix: str = "hierx"):
        self.prefix = prefix
        self.step: str | None = None
        self._started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def __call__(self, step: str, fraction: float | None = None) -> None:
        self.step = step
        print(progress_line(self.prefix, self.elapsed, step, fraction), file=sys.stderr, flush=True)
