"""runtime.py on synthetic graph inputs (no export): the user's inputs checked against the graph,
inputs generated from its types, and the display registry the engine's views go through."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import hierx_nb
from hierx_nb import display
from hierx_nb.runtime import check_inputs, generated_inputs, match_inputs


def _arg(name, shape, type_="tensor(float)"):
    return SimpleNamespace(name=name, shape=shape, type=type_)  # what ORT's NodeArg gives


ARGS = [_arg("input_ids", ["batch", 8], "tensor(int64)"), _arg("pixel.values", [1, 3], "tensor(float)")]


def test_inputs_by_name_and_position_fit():
    ids, px = np.zeros((4, 8), np.int64), np.ones((1, 3), np.float32)
    assert check_inputs(ARGS, [("input_ids", ids), ("pixel.values", px)]).keys() == {"input_ids", "pixel.values"}
    fed = check_inputs(ARGS, [(None, ids), ("pixel.values", px)])  # a symbolic axis takes any size
    assert fed["input_ids"] is ids and fed["pixel.values"] is px


@pytest.mark.parametrize("given, words", [
    ([("input_idz", np.zeros((1, 8), np.int64))], ["no input 'input_idz'", "input_ids (batch, 8) int64"]),
    ([("input_ids", np.zeros((1, 8), np.int64))], ["input 'pixel.values' is not given", "(1, 3) float32"]),
    ([("input_ids", np.zeros((1, 9), np.int64)), ("pixel.values", np.ones((1, 3), np.float32))],
     ["input 'input_ids' is (1, 9) int64", "expects (batch, 8) int64"]),
    ([("input_ids", np.zeros((1, 8), np.int32)), ("pixel.values", np.ones((1, 3), np.float32))],
     ["input 'input_ids' is (1, 8) int32", "expects (batch, 8) int64"]),
    ([(None, np.zeros((1, 8), np.int64))] * 3, ["3 positional inputs given, but the graph takes 2"]),
])
def test_inputs_that_do_not_fit_are_refused_in_one_line(given, words):
    with pytest.raises(hierx_nb.InputMismatch) as err:
        check_inputs(ARGS, given)
    line = err.value.one_line()
    assert "\n" not in line and all(w in line for w in words), line


def test_generated_inputs_follow_the_graph_types():
    args = [*ARGS, _arg("onnx::Scale_0", [], "tensor(double)"), _arg("mask", ["b", "s"], "tensor(bool)")]
    fed = generated_inputs(args)
    assert fed["input_ids"].shape == (1, 8) and fed["input_ids"].dtype == np.int64 and (fed["input_ids"] == 0).all()
    assert fed["pixel.values"].shape == (1, 3) and fed["pixel.values"].dtype == np.float32
    assert fed["onnx::Scale_0"].shape == () and fed["onnx::Scale_0"].dtype == np.float64  # a scalar, any name
    assert fed["mask"].shape == (1, 1) and fed["mask"].dtype == np.bool_
    again = generated_inputs(args)  # seeded: the same graph always gets the same inputs
    assert all(np.array_equal(again[k], v) for k, v in fed.items())


def test_reference_inputs_match_by_name_else_by_position():
    a, b = np.zeros(1), np.ones(1)
    assert match_inputs(ARGS, [("pixel.values", b), ("input_ids", a)]) == {"input_ids": a, "pixel.values": b}
    assert match_inputs(ARGS, [("x", a), ("y", b)]) == {"input_ids": a, "pixel.values": b}
    with pytest.raises(hierx_nb.ExportError, match="cannot match the ONNX inputs"):
        match_inputs(ARGS, [("x", a)])


def test_views_come_from_the_registry_the_notebook_layer_fills(monkeypatch):
    assert display.view("to_html").__module__ == "hierx_nb.notebook.report"
    assert display.view("figure").__module__ == "hierx_nb.notebook.figures"
    monkeypatch.setattr(display, "_views", {})
    monkeypatch.setattr(display, "_missing", {"widget": "the explorer needs the notebook extra"})
    with pytest.raises(ImportError, match="needs the notebook extra"):
        display.view("widget")
    with pytest.raises(ImportError, match="pip install 'hierx_nb\\[notebook\\]'"):
        display.view("figure")
