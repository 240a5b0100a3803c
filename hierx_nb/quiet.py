"""Keep exporters' console chatter (progress lines, graph dumps, optimizer notes) out of the user's way."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
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
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                _native_muted(sys.__stdout__, 1), _native_muted(sys.__stderr__, 2):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _native_muted(stream, default_fd: int):
    """Send a standard file descriptor to a scratch file: the TorchScript exporter logs from C++."""
    try:
        fd = stream.fileno() if stream is not None else default_fd
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        yield  # no real stderr (embedded interpreters): nothing to mute
        return
    with tempfile.TemporaryFile() as scratch:
        with contextlib.suppress(Exception):
            stream.flush()  # what was printed before the block still goes where it was meant to
        os.dup2(scratch.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
