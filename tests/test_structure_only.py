"""Structure-only export (meta device, no weights) and weights in ONNX external data."""
from __future__ import annotations

import ast

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from transformers import LlamaConfig, LlamaModel
from zoo import case

import hierx_nb

TINY_LLAMA = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, vocab_size=99)


def test_meta_model_builds_without_memory():
    model = hierx_nb.meta_model(LlamaConfig(**TINY_LLAMA))
    assert isinstance(model, LlamaModel) and not model.training
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_structure_only_tiny_llama(tmp_path):
    model = hierx_nb.meta_model(LlamaConfig(**TINY_LLAMA))
    out = tmp_path / "llama.onnx"
    result = hierx_nb.export(model, output=out, structure_only=True)  # inputs from the config
    assert result.structure_only and result.strategy == "dynamo"
    assert result.coverage_pct == 100.0 * (result.nodes["source"] == "exact").mean()
    names = {n for n, _ in model.named_modules()}
    assert set(result.nodes["module"]) <= names
    assert {f"layers.{i}" for i in range(3)} <= set(result.modules.query("total_nodes > 0")["module"])

    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)  # a valid file: weights are declared as typed inputs
    assert len(proto.graph.initializer) == 0
    assert not [f for f in tmp_path.iterdir() if f.suffix == ".data"]
    declared = {i.name for i in proto.graph.input}
    assert "layers.0.mlp.up_proj.weight" in declared
    assert {p.key: p.value for p in proto.metadata_props}["hierx.structure_only"] == "true"
    # Tags agree with PyTorch's own record on every node that has one.
    with_record = [n for n in proto.graph.node
                   if any(p.key == "pkg.torch.onnx.name_scopes" for p in n.metadata_props)]
    assert len(with_record) == len(proto.graph.node)
    for node in with_record:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
        assert meta["hierx.module"] == (scopes[-2] if len(scopes) > 1 else "")

    loaded = hierx_nb.load(out)
    assert loaded.structure_only and len(loaded.nodes) == len(result.nodes)
    with pytest.raises(hierx_nb.ExportError, match="structure-only"):
        result.validate()
    with pytest.raises(hierx_nb.ExportError, match="structure-only"):
        loaded.validate()


def test_structure_only_leaves_a_real_model_untouched():
    torch.manual_seed(0)
    model = LlamaModel(LlamaConfig(**TINY_LLAMA)).eval()
    before = model.layers[0].mlp.up_proj.weight.detach().clone()
    result = hierx_nb.export(model, output=None, structure_only=True)
    assert len(result.nodes) > 100
    assert model.layers[0].mlp.up_proj.weight.device.type == "cpu"
    assert torch.equal(model.layers[0].mlp.up_proj.weight, before)


def test_structure_only_rejects_strategies_that_need_weights():
    c = case("mlp")
    with pytest.raises(hierx_nb.ExportError) as err:
        hierx_nb.export(c.model, c.args, output=None, structure_only=True, strategy="htp")
    assert "structure-only" in err.value.attempts[0].reason


def test_weights_go_to_external_data_above_the_threshold(tmp_path):
    """The path big models take (> 2 GiB by default is far above CI's means): threshold lowered."""
    c = case("vgg_style")
    out = tmp_path / "vgg.onnx"
    result = hierx_nb.export(c.model, c.args, output=out, external_data_threshold=1024)
    data = tmp_path / "vgg.onnx.data"
    assert data.is_file() and data.stat().st_size > 0.9 * sum(p.numel() * 4 for p in c.model.parameters())
    assert out.stat().st_size < data.stat().st_size
    onnx.checker.check_model(str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: c.args[0].numpy()})
    np.testing.assert_allclose(got, c.model(*c.args).detach().numpy(), atol=1e-4)
    assert result.validate()["ok"].all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg.hierx.json", "vgg.onnx", "vgg.onnx.data"]
