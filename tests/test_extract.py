"""Module subgraphs: each extracted piece runs in ONNX Runtime and matches the module's own forward
on the inputs that module received."""
from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
from test_profile import _bert, _cnn

import hierx_nb


@pytest.mark.parametrize("build,strategy,module,first_input", [
    (_bert, "dynamo", "encoder.layer.1", "hidden_states"),
    (_bert, "htp", "embeddings", "input_ids"),
    (_cnn, "dynamo", "blocks.2", "x"),
])
def test_extracted_module_matches_its_forward(tmp_path, build, strategy, module, first_input):
    model, args, _ = build()
    result = hierx_nb.export(model, args, output=tmp_path / "m.onnx", strategy=strategy)
    piece = result.extract(module, tmp_path / "piece.onnx")
    assert piece.warnings == []
    proto = onnx.load(str(tmp_path / "piece.onnx"))
    onnx.checker.check_model(proto)
    assert proto.graph.input[0].name == first_input  # named like the module's forward
    assert {p.key: p.value for p in proto.metadata_props}["hierx.extracted_from"] == module
    # Tags kept, and only the module's subtree (plus constants it reads) is in the piece.
    inside = piece.nodes["module"].astype(str)
    assert (inside.str.startswith(module + ".") | (inside == module)).mean() > 0.9
    assert 0 < len(piece.nodes) < len(result.nodes)
    report = piece.validate()
    assert report["ok"].all() and len(report) >= 1
    ort.InferenceSession(str(tmp_path / "piece.onnx"), providers=["CPUExecutionProvider"])


def test_extract_from_a_loaded_file_with_the_model(tmp_path, monkeypatch):
    from hierx_nb import extraction

    model, args, _ = _bert(layers=2, seq=16)
    hierx_nb.export(model, args, output=tmp_path / "m.onnx", strategy="dynamo")
    monkeypatch.setattr(extraction, "EXTERNAL_DATA_THRESHOLD", 1024)  # the piece's weights go to a side file
    loaded = hierx_nb.load(tmp_path / "m.onnx")
    piece = loaded.extract("encoder.layer.0.attention", tmp_path / "att.onnx", model, args)
    assert (tmp_path / "att.onnx.data").is_file()
    assert piece.validate()["ok"].all()
    bare = loaded.extract("pooler", tmp_path / "pooler.onnx")  # no model: runnable, nothing to validate against
    with pytest.raises(hierx_nb.ExportError, match="no PyTorch model"):
        bare.validate()
    ort.InferenceSession(str(tmp_path / "pooler.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(hierx_nb.InputError, match="no module named"):
        loaded.extract("encoder.nope", tmp_path / "x.onnx")
