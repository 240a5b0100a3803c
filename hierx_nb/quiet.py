"""Keep exporters' console chatter (progress lines, graph dumps, optimizer notes) out of the user's way."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

_LOGGERS = ("torch", "torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def quiet():
    """Silence Python-level output from torch.onnx / torch.export / onnxscript inside the block."""
    saved = {name: logging.getLogger(name).level for name in _LOGGERS}
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
