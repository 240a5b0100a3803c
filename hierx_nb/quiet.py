"""Keep exporters' console chatter (progress lines, graph dumps, optimizer notes) out of the user's way."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings


class _Muted:
    """Python's stdout/stderr and file descriptors 1 and 2 sent to scratch, with a way back out."""

    def __init__(self, on_line):
        self._on_line = on_line
        self._saved_streams = None
        self._saved_fds: list[tuple[int, int]] = []
        self._scratch = None

    def __enter__(self):
        self._saved_streams = (sys.stdout, sys.stderr)
        self._scratch = tempfile.TemporaryFile()
        for stream, default_fd in ((sys.__stdout__, 1), (sys.__stderr__, 2)):
            # The TorchScript exporter logs graphs from C++: only the descriptors catch that.
            try:
                fd = stream.fileno() if stream is not None else default_fd
                with contextlib.suppress(Exception):
                    stream.flush()  # what was printed before still goes where it was meant to
                self._saved_fds.append((fd, os.dup(fd)))
            except (OSError, ValueError, AttributeError):
                continue  # no real descriptor (embedded interpreters): nothing to mute
        self._mute()
        return self

    def __exit__(self, *exc):
        self._unmute()
        for _, saved in self._saved_fds:
            os.close(saved)
        self._scratch.close()

    def _mute(self):
        sink = _LineSink(self._line)
        sys.stdout, sys.stderr = sink, sink
        for fd, _ in self._saved_fds:
            os.dup2(self._scratch.fileno(), fd)

    def _unmute(self):
        sys.stdout, sys.stderr = self._saved_streams
        for fd, saved in self._saved_fds:
            os.dup2(saved, fd)

    def _line(self, line: str) -> None:
        # The callback reports progress: it must reach the real outputs, not the scratch file.
        self._unmute()
        try:
            self._on_line(line)
        finally:
            self._mute()


class _LineSink(io.TextIOBase):
    """A stdout stand-in that hands each complete line to ``on_line`` and keeps nothing."""

    def __init__(self, on_line):
        self._on_line, self._pending = on_line, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._on_line(line)
        return len(text)


@contextlib.contextmanager
def quiet(on_line=None):
    """Silence the output (prints, logging, warnings, native stdout/stderr) of torch.onnx,
    torch.export and onnxscript inside the block.

    torch configures its own log handlers and levels per logger, so logging is disabled wholesale
    for the duration of the block and restored after it. ``on_line`` receives each line printed
    to Python's stdout or stderr inside the block (torch.onnx reports its export steps that way),
    with the real outputs restored while it runs.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), _Muted(on_line or (lambda line: None)):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
