"""Progress of a ``%hierexport`` run: one updating bar and line in a kernel, timed lines on stderr elsewhere."""
from __future__ import annotations

import html

from ..progress import StderrProgress, progress_line


class Progress(StderrProgress):
    """A ``progress(step, fraction=None)`` callback for ``hierx_nb.export``.

    In a Jupyter kernel (any front end, VS Code included) the steps replace each other in a single
    display; in a terminal IPython they are printed to stderr, one timed line each. ``close()``
    removes the kernel display; ``step`` and ``elapsed`` say where the run is.
    """

    def __init__(self, shell, prefix: str = "hierexport"):
        super().__init__(prefix)
        # Only a kernel can update a display in place; a terminal would print every update anew.
        self._live = getattr(shell, "kernel", None) is not None
        self._handle = None

    def __call__(self, step: str, fraction: float | None = None) -> None:
        if not self._live:
            super().__call__(step, fraction)
            return
        self.step = step
        text = progress_line(self.prefix, self.elapsed, step, fraction)
        # A bar for the front ends that render HTML (value-less <progress> is an indeterminate bar).
        value = f" value='{fraction:.3f}'" if fraction is not None else ""
        bundle = {"text/plain": text,
                  "text/html": f"<div style='opacity:0.75'><progress max='1'{value} style='width:12em'></progress> "
                               f"<code>{html.escape(text)}</code></div>"}
        if self._handle is None:
            from IPython.display import display

            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def close(self) -> None:
        """Blank the kernel display: the result (or the error line) says how the run ended."""
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
            self._handle = None
