"""The model's inputs and outputs (``result.io``): names, dtypes, shapes with named dynamic axes, from
the graph of an export and of a loaded file."""
from __future__ import annotations

import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch

import hierx_nb
from hierx_nb.graph_io import IO_COLUMNS, describe_io, io_frame


def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                        vocab_size=99, max_position_embeddings=64)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def bert_dynamo(tmp_path_factory):
    out = tmp_path_factory.mktemp("io") / "bert.onnx"
    return hierx_nb.export(tiny_bert(), output=out, strategy="dynamo", dynamic_shapes="batch,seq")


def test_io_of_an_export_names_the_dynamic_axes(bert_dynamo):
    io = bert_dynamo.io
    assert list(io.columns) == IO_COLUMNS
    inputs = io[io["kind"] == "input"]
    assert inputs.to_dict("records") == [
        {"kind": "input", "name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"]},
        {"kind": "input", "name": "attention_mask", "dtype": "int64", "shape": ["batch", "seq"]}]
    outputs = io[io["kind"] == "output"]
    assert outputs["dtype"].tolist() == ["float32", "float32"]
    # last_hidden_state and pooler_output keep the user's axis names through the graph
    assert outputs["shape"].tolist() == [["batch", "seq", 32], ["batch", 32]]
    assert describe_io(io, "input") == "input_ids int64 [batch, seq], attention_mask int64 [batch, seq]"


def test_io_is_kept_through_load(bert_dynamo):
    loaded = hierx_nb.load(bert_dynamo.onnx_path)
    assert loaded.io.to_dict("records") == bert_dynamo.io.to_dict("records")


def test_io_frame_of_a_hand_made_graph():
    """Weights are not inputs; an unnamed dynamic axis is '?', an unknown rank None, bf16 named."""
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.BFLOAT16), shape=ir.Shape([ir.SymbolicDim(None), 4]))
    w = ir.Value(name="w", type=ir.TensorType(ir.DataType.BFLOAT16), shape=ir.Shape([4, 4]),
                 const_value=ir.tensor(torch.zeros(4, 4, dtype=torch.bfloat16).float().numpy(), name="w"))
    node = ir.Node("", "MatMul", [x, w], num_outputs=1)
    y = node.outputs[0]
    y.name, y.dtype = "y", ir.DataType.BFLOAT16
    graph = ir.Graph([x, w], [y], nodes=[node], initializers=[w], opset_imports={"": 18})
    io = io_frame(ir.Model(graph, ir_version=10))
    assert io.to_dict("records") == [
        {"kind": "input", "name": "x", "dtype": "bfloat16", "shape": ["?", 4]},
        {"kind": "output", "name": "y", "dtype": "bfloat16", "shape": None}]


# -- output names after the model's output structure --------------------------------------------------

def test_hf_output_names_under_dynamo(bert_dynamo):
    assert bert_dynamo.io[bert_dynamo.io["kind"] == "output"]["name"].tolist() == ["last_hidden_state", "pooler_output"]
    assert bert_dynamo.validate()["output"].tolist() == ["last_hidden_state", "pooler_output"]


def test_hf_output_names_under_htp(tmp_path):
    result = hierx_nb.export(tiny_bert(), output=tmp_path / "bert.onnx", strategy="htp")
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state", "pooler_output"]
    assert result.validate()["ok"].all()


class Nested(torch.nn.Module):
    """A plain dict output, nested with a tuple; its key ``relu`` is also the name dynamo gives an inner value."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = torch.relu(self.lin(x))
        return {"relu": h * 2, "parts": (h + 1, {"last": h - 1})}


NESTED_NAMES = ["relu", "parts.0", "parts.1.last"]


@pytest.mark.parametrize("strategy", ["dynamo", "htp", "fx"])
def test_plain_dict_output_names(strategy):
    torch.manual_seed(0)
    result = hierx_nb.export(Nested().eval(), (torch.randn(2, 4),), output=None, strategy=strategy)
    assert result.strategy == strategy
    assert result.io[result.io["kind"] == "output"]["name"].tolist() == NESTED_NAMES
    proto = ir.serde.serialize_model(result.onnx_model)
    onnx.checker.check_model(proto)  # every value name still defined once (SSA)
    report = result.validate()
    assert report["output"].tolist() == NESTED_NAMES and report["ok"].all()
    if strategy == "dynamo":  # dynamo named the ReLU's value "relu": it was renamed aside, not duplicated
        relu = next(n for n in result.onnx_model.graph if n.op_type == "Relu")
        assert relu.outputs[0].name == "relu_1"


def test_tuple_outputs_are_indexed_and_user_names_win():
    from hierx_nb.inputs import tensor_leaf_names

    x = torch.zeros(1)
    assert tensor_leaf_names(x) is None  # a bare tensor keeps the exporter's name
    assert tensor_leaf_names((x, [x, x], None, 3)) == ["output_0", "output_1.0", "output_1.1"]
    torch.manual_seed(0)
    result = hierx_nb.export(Nested().eval(), (torch.randn(2, 4),), output=None, strategy="dynamo",
                             output_names=["a", "b", "c"])
    assert result.io[result.io["kind"] == "output"]["name"].tolist() == ["a", "b", "c"]


def test_htp_output_axes_take_the_users_names(tmp_path):
    """TorchScript names output axes itself (``LayerNormalizationonnx::Gather_270_dim_0``); traced back
    to the inputs' axes, they read ``batch`` and ``seq`` in the file, the io frame and after load."""
    result = hierx_nb.export(tiny_bert(), output=tmp_path / "bert.onnx", strategy="htp", dynamic_shapes="batch,seq")
    outputs = result.io[result.io["kind"] == "output"]
    assert outputs["shape"].tolist() == [["batch", "seq", 32], ["batch", 32]]
    loaded = hierx_nb.load(result.onnx_path)
    assert loaded.io.to_dict("records") == result.io.to_dict("records")
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    assert [o.shape for o in session.get_outputs()] == [["batch", "seq", 32], ["batch", 32]]


class _Markup(torch.nn.Module):
    def forward(self, x):
        return {"<b>bold</b>": x * 2}


def test_io_names_render_as_text_in_the_static_summary():
    result = hierx_nb.export(_Markup().eval(), (torch.randn(2, 3),), output=None, strategy="dynamo")
    assert result.io["name"].tolist() == ["x", "<b>bold</b>"]
    page = result._repr_html_()
    assert "outputs: &lt;b&gt;bold&lt;/b&gt; float32 [2, 3]" in page and "<b>bold</b>" not in page
    assert "inputs: x float32 [2, 3]" in page
