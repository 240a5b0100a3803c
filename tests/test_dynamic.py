"""torch.onnx.export's options through hierx_nb.export: dynamic dimensions named as the user named them,
files that run at other sizes, and strategies that fail (never silently fix a size) when they cannot."""
import onnx_ir as ir
import pytest
import torch
import torch.nn as nn
from zoo import case

import hierx_nb


def _dims(values) -> dict[str, list]:
    return {v.name: [d if isinstance(d, int) else str(d) for d in v.shape] for v in values}


def _text_inputs(batch, seq, vocab=99):
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(batch * 100 + seq))
    return {"input_ids": ids, "attention_mask": torch.ones(batch, seq, dtype=torch.long)}


SIZES = [(1, 5), (3, 11), (4, 23)]  # none of them the export's


def test_decoder_lm_dynamic_batch_and_sequence():
    c = case("hf_gpt2_lm")
    # No inputs given: generated from the config, with a batch of 2 since the batch is to be dynamic.
    result = hierx_nb.export(c.model, output=None, dynamic_shapes={"input_ids": {0: "batch", 1: "seq"},
                                                                    "attention_mask": {0: "batch", 1: "seq"}})
    assert result.strategy == "dynamo"
    graph = result.onnx_model.graph
    assert _dims(graph.inputs) == {"input_ids": ["batch", "seq"], "attention_mask": ["batch", "seq"]}
    (logits,) = _dims(graph.outputs).values()
    assert logits == ["batch", "seq", 99]  # torch's own symbols (s72...) are gone from the file
    for batch, seq in SIZES:
        report = result.validate(kwargs=_text_inputs(batch, seq), atol=1e-4)
        assert report["ok"].all() and report["shape"][0] == (batch, seq, 99)
    assert result.warnings == []


def test_encoder_dynamic_axes_style_with_names(tmp_path):
    c = case("hf_bert")
    out = tmp_path / "bert.onnx"
    result = hierx_nb.export(c.model, (), c.kwargs, output=out, input_names=["ids", "mask"],
                             output_names=["hidden", "pooled"],
                             dynamic_axes={"ids": {0: "batch", 1: "seq"}, "mask": [0, 1]})
    assert result.strategy == "dynamo"
    graph = ir.load(out).graph
    # A list of axes names each dimension after its input; equal sizes stay one dimension.
    assert _dims(graph.inputs)["ids"] == ["batch", "seq"]
    assert len(set(map(str, graph.inputs[1].shape))) == 2
    assert [v.name for v in graph.outputs] == ["hidden", "pooled"]
    assert _dims(graph.outputs)["hidden"][:2] == ["batch", "seq"]
    for batch, seq in SIZES:
        assert result.validate(kwargs=_text_inputs(batch, seq), atol=1e-4)["ok"].all()


def test_data_dependent_control_flow_dynamic_through_the_tracer():
    c = case("data_dependent_if")
    result = hierx_nb.export(c.model, c.args, output=None, dynamic_shapes=({0: "batch"},), output_names=["logits"])
    assert result.strategy == "htp"  # torch.export cannot capture the branch
    assert _dims(result.onnx_model.graph.inputs) == {"x": ["batch", 8]}
    assert _dims(result.onnx_model.graph.outputs) == {"logits": ["batch", 2]}
    for batch in (1, 5, 9):
        x = torch.rand(batch, 8, generator=torch.Generator().manual_seed(batch)) + 0.1
        assert result.validate(args=(x,), atol=1e-5)["ok"].all()


def test_htp_honours_dynamic_shapes_given_for_dynamo():
    c = case("hf_gpt2")
    result = hierx_nb.export(c.model, (), c.kwargs, output=None, strategy="htp",
                             dynamic_shapes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}})
    assert _dims(result.onnx_model.graph.inputs) == {"input_ids": ["batch", "seq"], "attention_mask": ["batch", "seq"]}
    for batch, seq in SIZES:
        assert result.validate(kwargs=_text_inputs(batch, seq), atol=1e-4)["ok"].all()


class UnrolledOverBatch(nn.Module):
    """A Python loop over the batch: tracing unrolls it, so the batch size is fixed inside the graph."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return torch.stack([self.lin(x[i]) for i in range(x.shape[0])])


def test_no_strategy_silently_fixes_a_dynamic_dimension():
    x = torch.randn(3, 4)
    with pytest.raises(hierx_nb.ExportError) as err:
        hierx_nb.export(UnrolledOverBatch(), (x,), output=None, dynamic_shapes={"x": {0: "batch"}})
    reasons = {a.name: a.reason for a in err.value.attempts}
    assert set(reasons) == {s.name for s in hierx_nb.strategies.auto_order()}
    assert "htp fixed a dynamic dimension" in reasons["htp"]
    # Without the dynamic request the same model exports (the failures are the request's, not the model's).
    assert hierx_nb.export(UnrolledOverBatch(), (x,), output=None).strategy == "dynamo"


def test_dim_objects_keep_their_names_and_ranges():
    c = case("mlp")
    (x,) = c.args
    batch = torch.export.Dim("batch", min=1, max=64)
    result = hierx_nb.export(c.model, (x,), output=None, strategy="dynamo", dynamic_shapes=({0: batch},))
    assert [str(d) for d in result.onnx_model.graph.inputs[0].shape][0] == "batch"
    for n in (1, 7, 64):
        assert result.validate(args=(torch.randn(n, *x.shape[1:]),), atol=1e-5)["ok"].all()


def test_fixed_shapes_file_fails_validation_at_other_sizes_with_one_line():
    c = case("mlp")
    (x,) = c.args
    result = hierx_nb.export(c.model, (x,), output=None)
    with pytest.raises(hierx_nb.ExportError, match="ONNX Runtime cannot run the model on these inputs"):
        result.validate(args=(torch.randn(x.shape[0] + 3, *x.shape[1:]),))


@pytest.mark.parametrize("kwargs,message", [
    ({"dynamic_shapes": {"nope": {0: "batch"}}}, "which the model is not given"),
    ({"dynamic_shapes": ({5: "batch"},)}, "out of range"),
    ({"dynamic_axes": {"x": {0: "batch"}}, "dynamic_shapes": ({0: "b"},)}, "not both"),
    ({"dynamic_axes": {"y": [0]}}, "no input or output"),
    ({"dynamic_shapes": ({0: 3.5},)}, "expected a name"),
    ({"input_names": ["a", "b"]}, "input_names has 2 names"),
])
def test_bad_dynamic_requests_are_input_errors(kwargs, message):
    c = case("mlp")
    with pytest.raises(hierx_nb.InputError, match=message):
        hierx_nb.export(c.model, c.args, output=None, **kwargs)


def test_output_axes_take_the_names_given_in_dynamic_axes():
    c = case("mlp")
    (x,) = c.args
    for strategy in ("dynamo", "htp"):
        result = hierx_nb.export(c.model, (x,), output=None, strategy=strategy, input_names=["x"],
                                 output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "rows"}})
        assert _dims(result.onnx_model.graph.inputs)["x"][0] == "n"
        assert _dims(result.onnx_model.graph.outputs)["y"][0] == "rows", strategy
