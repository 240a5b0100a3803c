"""compare: two files of one model, module by module; planted faults are named as first_divergent."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnx_ir as ir
import pytest
import torch
from onnxconverter_common import float16
from transforms import TRANSFORMS

import hierx_nb
from hierx_nb.cli import main
from hierx_nb.compare import COLUMNS, DEFAULT_SQNR_DB
from hierx_nb.errors import DifferentModels, InputMismatch
from hierx_nb.tagging import MODULE_KEY

FAST = {"runs": 3, "warmup": 1}


class Planted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(16, 32)
        self.act = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(32, 32)
        self.fc3 = torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def _export(tmp_path, name="a.onnx", change=None):
    model = Planted()
    if change is not None:
        with torch.no_grad():
            change(model)
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    return hierx_nb.export(model, (x,), output=tmp_path / name)


def _first(df) -> str | None:
    return df.attrs["first_divergent"]


def test_fp16_clipped_weights_are_blamed_on_their_linear(tmp_path):
    def big(model):  # onnxconverter-common clips weights beyond 1e4 to 1e4
        model.fc2.weight[0, :4] = 3e4
    a = _export(tmp_path, change=big)
    b = tmp_path / "fp16.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(str(a.onnx_path)), keep_io_types=True), str(b))
    df = hierx_nb.compare(a, b, **FAST)
    assert list(df.columns) == COLUMNS
    rows = df.set_index("module")
    assert _first(df) == "fc2" and rows.loc["fc2", "own_sqnr_db"] < DEFAULT_SQNR_DB
    assert rows.loc["fc1", "own_sqnr_db"] > 40 and rows.loc["fc3", "own_sqnr_db"] > 40  # fp16 rounding only
    assert rows.loc["fc3", "sqnr_db"] < DEFAULT_SQNR_DB  # ... though fc3 inherits fc2's error


def test_an_outlier_channel_int8_cannot_hold_is_blamed_on_the_linear_it_feeds(tmp_path):
    def outlier(model):
        # fc1's channel 0 is ~1000x the others (and fc2 ignores it): per-tensor int8 of fc2's input,
        # one scale for all channels, rounds the channels fc2 does use to a few levels
        model.fc1.bias[0] = 2000.0
        model.fc2.weight[:, 0] = 0.0
    a = _export(tmp_path, change=outlier)
    b = tmp_path / "int8.onnx"
    TRANSFORMS["quantize_dynamic"](a.onnx_path, b)
    df = hierx_nb.compare(a, b, **FAST)
    rows = df.set_index("module")
    assert _first(df) == "fc2", df[["module", "own_sqnr_db", "sqnr_db"]]
    assert rows.loc["fc1", "own_sqnr_db"] > DEFAULT_SQNR_DB
    assert "MatMulInteger" in rows.loc["fc2", "op_changes"]


def test_a_weight_changed_by_hand_is_blamed_on_its_module(tmp_path):
    a = _export(tmp_path)
    model = ir.load(a.onnx_path)
    weight = next(v for n in model.graph if n.metadata_props.get(MODULE_KEY) == "fc2"
                  for v in n.inputs if v is not None and v.is_initializer() and len(v.shape) == 2)
    arr = weight.const_value.numpy().copy()
    arr[0] *= 3.0
    weight.const_value = ir.tensor(arr, name=weight.name)
    b = tmp_path / "edited.onnx"
    ir.save(model, b)
    df = hierx_nb.compare(a, hierx_nb.load(b), **FAST)
    assert _first(df) == "fc2"
    assert math.isinf(df.set_index("module").loc["fc1", "own_sqnr_db"])  # untouched: the very same values


def test_a_file_and_its_ort_optimized_copy_differ_nowhere(tmp_path):
    a = _export(tmp_path)
    b = tmp_path / "opt.onnx"
    TRANSFORMS["ort_all"](a.onnx_path, b)
    df = hierx_nb.compare(a.onnx_path, b, inputs={"x": np.ones((4, 16), np.float32)}, **FAST)
    assert _first(df) is None
    assert (df["own_sqnr_db"].dropna() > 100).all()
    assert df.attrs["kernel_ms_a"] > 0 and df.attrs["kernel_ms_b"] > 0
    assert a.compare(b, **FAST).attrs["first_divergent"] is None and a.comparison is not None
    fig = a.figure("compare")  # time and error by module
    assert [t.name for t in fig.data] == ["a", "b", "own SQNR"] and "no module below" in fig.layout.title.text


def test_two_models_or_inputs_for_one_file_get_one_line(tmp_path):
    a = _export(tmp_path)

    class Other(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(16, 8)

        def forward(self, x):
            return self.proj(x)
    other = hierx_nb.export(Other(), (torch.randn(4, 16),), output=tmp_path / "other.onnx")
    with pytest.raises(DifferentModels, match="not the same model"):
        hierx_nb.compare(a, other, **FAST)
    fixed = onnx.load(str(a.onnx_path))
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 3  # a transform that fixed another batch
    onnx.save(fixed, str(tmp_path / "fixed.onnx"))
    with pytest.raises(InputMismatch, match="fit a but not b"):
        hierx_nb.compare(a, tmp_path / "fixed.onnx", **FAST)


def test_cli_compare(tmp_path, capsys):
    a = _export(tmp_path)
    b = tmp_path / "q.onnx"
    TRANSFORMS["quantize_dynamic"](a.onnx_path, b)
    assert main(["compare", str(a.onnx_path), str(b), "--format", "json", "--runs", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {m["module"] for m in doc["modules"]} >= {"fc1", "fc2", "fc3"} and "first_divergent" in doc
    assert main(["compare", str(a.onnx_path), str(b), "--depth", "0", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "first divergent" in out and "fc2" not in out
    assert main(["compare", str(a.onnx_path), str(tmp_path / "nope.onnx")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_fp32_vs_int8_bert_times_every_module_on_both_sides(tmp_path):
    from zoo import case

    c = case("hf_bert")
    a = hierx_nb.export(c.model, c.args, c.kwargs, output=tmp_path / "bert.onnx")
    b = tmp_path / "bert_int8.onnx"
    TRANSFORMS["quantize_dynamic"](a.onnx_path, b)
    df = a.compare(b, **FAST)
    for side in "ab":
        assert df.attrs[f"unattributed_ms_{side}"] <= 0.05 * df.attrs[f"kernel_ms_{side}"]
    layers = df[df["module"].str.fullmatch(r"encoder\.layer\.\d")]
    assert len(layers) == 2 and (layers["ms_a"] > 0).all() and (layers["ms_b"] > 0).all()
    assert df.set_index("module").loc["encoder.layer.0.intermediate.dense", "own_sqnr_db"] > DEFAULT_SQNR_DB
    # Its ORT-optimized copy: every module whose values survive the fusions is measured, none diverges.
    opt = tmp_path / "bert_opt.onnx"
    TRANSFORMS["ort_all"](a.onnx_path, opt)
    same = a.compare(opt, **FAST)
    measured = same["own_sqnr_db"].dropna()
    assert same.attrs["first_divergent"] is None and len(measured) >= 0.6 * len(same) and (measured > 100).all()
