"""Per-module divergence: a weight or attribute changed in the file is blamed on its module; a
wrong translation produces a warning naming the module; untouched files blame nobody."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
import torch
import torch.nn as nn
import zoo

import hierx_nb
from hierx_nb import translations


def _export(tmp_path, name: str, strategy: str):
    c = zoo.case(name)
    path = tmp_path / f"{name}.onnx"
    result = hierx_nb.export(c.model, c.args, c.kwargs, output=path, strategy=strategy)
    return c, result, path


def _perturb_weight(path, module: str) -> str:
    """Scale, in the file, a float weight that only ``module``'s nodes read; its name."""
    model = ir.load(path)
    for value in model.graph.initializers.values():
        users = {u.node.metadata_props.get("hierx.module") for u in value.uses()}
        arr = value.const_value.numpy() if value.const_value is not None else None
        if users == {module} and arr is not None and arr.dtype == np.float32 and arr.size >= 4:
            value.const_value = ir.tensor(arr * 1.5 + 0.1, name=value.name)
            ir.save(model, path)
            return value.name
    raise AssertionError(f"no weight read only by {module!r} in {path}")


@pytest.mark.parametrize("name,strategy,module", [
    ("hf_bert", "dynamo", "encoder.layer.1.attention.self.value"),
    # the optimizer folds bn1 into conv1's Conv node (tagged conv1, hierx.fused ["layers.1.bn1"])
    ("mini_resnet", "dynamo", "layers.1.conv1"),
    ("efficientnet_se", "htp", "se.fc1"),
])
def test_changed_weight_is_blamed_on_its_module(tmp_path, name, strategy, module):
    c, result, path = _export(tmp_path, name, strategy)
    assert result.warnings == []
    clean = hierx_nb.load(path).validate(c.model, c.args, c.kwargs, per_module=True)
    assert clean.attrs["first_divergent"] is None
    assert clean["ok"].dropna().all() and clean["outputs"].gt(0).sum() >= 5

    _perturb_weight(path, module)
    loaded = hierx_nb.load(path)
    report = loaded.validate(c.model, c.args, c.kwargs, per_module=True, raise_on_mismatch=False)
    assert report.attrs["first_divergent"] == module
    row = report.set_index("module").loc[module]
    assert row["ok"] is False and row["inputs_ok"] is True and row["max_abs_diff"] > 1e-3
    assert loaded.divergence is report
    # Modules downstream diverge too, but their inputs already did: they are not blamed.
    later = report.set_index("module")
    assert (later["ok"] == False).sum() > 1  # noqa: E712 (object column: None, True, False)
    with pytest.raises(hierx_nb.ExportError, match=module.replace(".", r"\.")):
        loaded.validate(c.model, c.args, c.kwargs, per_module=True)


def test_changed_layernorm_epsilon_is_blamed_on_the_layernorm(tmp_path):
    c, _, path = _export(tmp_path, "hf_bert", "dynamo")
    target = "encoder.layer.0.output.LayerNorm"
    model = ir.load(path)
    norms = [n for n in model.graph if n.op_type == "LayerNormalization" and n.metadata_props["hierx.module"] == target]
    assert len(norms) == 1
    norms[0].attributes["epsilon"] = ir.AttrFloat32("epsilon", 10.0)
    ir.save(model, path)
    report = hierx_nb.load(path).validate(c.model, c.args, c.kwargs, per_module=True, raise_on_mismatch=False)
    assert report.attrs["first_divergent"] == target
    row = report.set_index("module").loc[target]
    assert row["ok"] is False and row["inputs_ok"] is True


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.fc(x))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(_Block(), _Block(), _Block())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.blocks(x))


def _wrong_gelu(x, approximate="none"):
    from onnxscript import opset18 as op

    return op.Relu(x)  # deliberately wrong: GELU is not ReLU for negative inputs


def test_wrong_translation_warns_naming_the_module(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.randn(4, 16)
    monkeypatch.setitem(translations.TABLE, torch.ops.aten.gelu.default, _wrong_gelu)
    result = hierx_nb.export(net, (x,), output=tmp_path / "net.onnx", strategy="dynamo")
    assert len(result.warnings) == 1, result.warnings
    warning = result.warnings[0]
    assert "first divergent: module 'blocks.0.act' (GELU)" in warning and "max abs diff" in warning
    assert result.divergence.attrs["first_divergent"] == "blocks.0.act"
    # The sidecar keeps the warning; load() gives it back.
    assert hierx_nb.load(tmp_path / "net.onnx").warnings == result.warnings


def test_correct_translation_no_warning_and_check_skipped_above_limit(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.randn(4, 16)
    assert hierx_nb.export(net, (x,), output=None, strategy="dynamo").warnings == []
    from hierx_nb import exporter

    monkeypatch.setattr(exporter, "CHECK_LIMIT_BYTES", 100)
    result = hierx_nb.export(net, (x,), output=None, strategy="dynamo")
    assert len(result.warnings) == 1 and result.warnings[0].startswith("not checked against PyTorch")


def test_tolerance_follows_dtype(tmp_path):
    from hierx_nb.validation import tolerance

    assert tolerance("torch.float32", None, None) == (1e-4, 1e-3)
    assert tolerance("torch.float16", None, None) == (1e-2, 1e-2)
    assert tolerance("torch.bfloat16", None, 0.5) == (5e-2, 0.5)
    torch.manual_seed(0)
    net = _Net().eval().half()
    x = torch.randn(4, 16, dtype=torch.float16)
    result = hierx_nb.export(net, (x,), output=None, strategy="dynamo")
    report = result.validate(raise_on_mismatch=False)
    # fp16 rounding differs between kernels at ~1e-3: the fp16 default tolerates it, fp32's may not.
    assert report["ok"].all() and result.warnings == []
    assert report["max_abs_diff"].max() < 1e-2
