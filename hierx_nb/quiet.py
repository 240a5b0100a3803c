"""Keep exporters' console chatter (progress lines, graph dumps, optimizer notes) out of the user's way."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings


@contextlib.contextmanager
def quiet():
    """Silence Python-level output (prints, logging, warnings) of torch.onnx / torch.export / onnxscript.

    torch configures its own log handlers and levels per logger, so logging is disabled wholesale
    for the duration of the block and restored after it.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
