"""Latency by module where ONNX Runtime fused nodes: a module whose nodes went into a kernel placed on
another module says which (``fused_into``), in Python, the sidecar and ``hierx profile``."""
from __future__ import annotations

import json

import pytest
import torch

import hierx_nb
from hierx_nb import cli


@pytest.fixture(scope="module")
def bert_profiled(tmp_path_factory):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                        vocab_size=99, max_position_embeddings=64)
    result = hierx_nb.export(BertModel(config).eval(), output=tmp_path_factory.mktemp("fused") / "bert.onnx",
                             strategy="dynamo")
    return result, result.profile(runs=3, warmup=1)


def test_fused_into_names_the_module_holding_the_kernel(bert_profiled):
    result, lat = bert_profiled
    fused = {m: t for m, t in zip(lat["module"], lat["fused_into"]) if isinstance(t, str)}
    # ORT fuses the residual Add with LayerNorm (SkipLayerNormalization): the kernel sits on BertOutput,
    # the LayerNorm module keeps its node but no kernel of its own.
    assert fused["encoder.layer.0.output.LayerNorm"] == "encoder.layer.0.output"
    assert fused["encoder.layer.0.attention.output.LayerNorm"] == "encoder.layer.0.attention.output"
    own = result.modules.set_index("module")["own_nodes"]
    rows = lat.set_index("module")
    for module, target in fused.items():
        assert own[module] > 0 and rows.loc[module, "nodes"] == 0 and rows.loc[module, "self_ms"] == 0
        assert rows.loc[target, "nodes"] > 0 and rows.loc[target, "self_ms"] > 0  # a real module with the time
    # modules with kernels of their own are not "fused into" anything
    assert all(not isinstance(t, str) for t, n in zip(lat["fused_into"], lat["nodes"]) if n > 0)


def test_fused_into_is_kept_and_printed(bert_profiled, capfd):
    result, lat = bert_profiled
    loaded = hierx_nb.load(result.onnx_path)
    assert loaded.latency.set_index("module")["fused_into"].get("encoder.layer.0.output.LayerNorm") == \
        "encoder.layer.0.output"
    assert cli.main(["profile", str(result.onnx_path), "--runs", "2", "--warmup", "1"]) == 0
    out, _ = capfd.readouterr()
    lines = [x for x in out.splitlines() if x.endswith("(fused into encoder.layer.0.output)")]
    assert len(lines) == 1 and lines[0].split()[:3] == ["LayerNorm", "LayerNorm", "0.000"]
    assert cli.main(["profile", str(result.onnx_path), "--runs", "2", "--format", "json"]) == 0
    doc = json.loads(capfd.readouterr()[0])
    by_module = {m["module"]: m for m in doc["modules"]}
    assert by_module["encoder.layer.0.output.LayerNorm"]["fused_into"] == "encoder.layer.0.output"
