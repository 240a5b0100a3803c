"""Sanity checks for tests/zoo.py: determinism and the measured tracer flags."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from zoo import ZOO, Case, case  # noqa: E402

NAMES = sorted(ZOO)


def _flatten(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):  # includes transformers ModelOutput
        return [t for v in out.values() for t in _flatten(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _flatten(v)]
    return []


class _KwargsWrapper(torch.nn.Module):
    """What a TorchScript (dynamo=False) export of a kwargs-driven model needs."""

    def __init__(self, model: torch.nn.Module, kwargs: dict):
        super().__init__()
        self.model = model
        self.kwargs = kwargs

    def forward(self, *args):
        return self.model(*args, **self.kwargs)


@contextlib.contextmanager
def _quiet():
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        warnings.simplefilter("ignore")
        yield


def test_registry_shape():
    assert len(ZOO) >= 20
    for name in NAMES:
        c = case(name)
        assert isinstance(c, Case) and c.name == name
        assert not c.model.training, name
        assert isinstance(c.args, tuple) and isinstance(c.kwargs, dict)
        for v in list(c.args) + list(c.kwargs.values()):
            assert isinstance(v, (torch.Tensor, bool)), (name, type(v))
        assert c.args or c.kwargs


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_forward(name):
    c1, c2 = case(name), case(name)
    with torch.no_grad():
        a = _flatten(c1.model(*c1.args, **c1.kwargs))
        b = _flatten(c1.model(*c1.args, **c1.kwargs))
        c = _flatten(c2.model(*c2.args, **c2.kwargs))  # a rebuilt case is identical too
    assert a, "no tensor outputs"
    assert len(a) == len(b) == len(c)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y), name
        assert torch.equal(x, z), name


def _succeeds(action) -> bool:
    """Whether ``action()`` runs without raising (its console output silenced)."""
    try:
        with _quiet():
            action()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_fx_flag(name):
    c = case(name)
    ok = _succeeds(lambda: torch.fx.symbolic_trace(c.model))
    assert ok == c.fx_traceable, f"{name}: measured fx_traceable={ok}"


@pytest.mark.parametrize("name", NAMES)
def test_dynamo_flag(name):
    c = case(name)
    ok = _succeeds(lambda: torch.onnx.export(c.model, c.args, kwargs=c.kwargs, dynamo=True, verbose=False))
    assert ok == c.dynamo_ok, f"{name}: measured dynamo_ok={ok}"


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_flag(name):
    c = case(name)
    ok = _succeeds(lambda: torch.onnx.export(_KwargsWrapper(c.model, c.kwargs), c.args, io.BytesIO(),
                                             dynamo=False, verbose=False))
    assert ok == c.torchscript_ok, f"{name}: measured torchscript_ok={ok}"
