"""Model Explorer: a ``namespace`` on every node for every strategy, and node-data overlays."""
from __future__ import annotations

import json

import onnx
import pytest
import torch
import torch.nn as nn
from test_profile import _bert

import hierx_nb


class _Odd(nn.Module):
    """Names that are markup or hold a '/' must still make a valid namespace."""

    def __init__(self):
        super().__init__()
        self.parts = nn.ModuleDict({"a/b": nn.Linear(8, 8), "<i>x</i>": nn.Linear(8, 4)})

    def forward(self, x):
        return self.parts["<i>x</i>"](torch.relu(self.parts["a/b"](x)))


@pytest.mark.parametrize("strategy", ["dynamo", "htp", "fx"])
def test_every_node_has_the_module_namespace(tmp_path, strategy):
    torch.manual_seed(0)
    hierx_nb.export(_Odd().eval(), (torch.randn(2, 8),), output=tmp_path / "m.onnx", strategy=strategy)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert len(proto.graph.node) > 0
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        module = meta["hierx.module"]
        segments = meta["namespace"].split("/")
        depth = 0 if module == "" else module.count(".") + 1
        assert len(segments) == depth + 1, meta["namespace"]
        assert segments[0] == ": test_model_explorer._Odd"
        if module:
            assert segments[-1].startswith(module.replace("/", "\u2215") + ": torch.nn.modules.linear.Linear")
    if strategy == "dynamo":  # htp's TorchScript scopes cannot hold the '/' key: it tags the ModuleDict
        assert any("parts.a\u2215b: " in p.value for n in proto.graph.node for p in n.metadata_props)


def test_overlays_for_latency_and_divergence(tmp_path):
    model, args, _ = _bert(layers=2, seq=16)
    result = hierx_nb.export(model, args, output=tmp_path / "m.onnx", strategy="dynamo")
    with pytest.raises(hierx_nb.ExportError, match="profile"):
        result.model_explorer_overlay("latency", tmp_path / "lat.json")
    df = result.profile(runs=3, warmup=1)
    doc = result.model_explorer_overlay("latency", tmp_path / "lat.json")
    assert json.loads((tmp_path / "lat.json").read_text()) == doc
    names = {n.name for n in onnx.load(str(tmp_path / "m.onnx"), load_external_data=False).graph.node}
    assert doc["results"] and set(doc["results"]) <= names
    total = sum(r["value"] for r in doc["results"].values())
    assert total == pytest.approx(df.attrs["kernel_ms"] - df.attrs["unattributed_ms"], rel=1e-6)
    assert doc["gradient"][0]["stop"] == 0 and doc["gradient"][-1]["stop"] == 1

    result.validate(per_module=True)
    div = result.model_explorer_overlay("divergence", tmp_path / "div.json")
    assert div["results"] and set(div["results"]) <= names
    assert all(r["value"] < 1e-3 for r in div["results"].values())
    with pytest.raises(hierx_nb.InputError, match="unknown metric"):
        result.model_explorer_overlay("memory", tmp_path / "x.json")
