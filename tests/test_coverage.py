"""Coverage = known: the share of nodes whose module comes from PyTorch's record (exact) or an FX
match (pattern), never from inference. Checked where inference does fill in nodes."""
from __future__ import annotations

import json

import pytest
from test_cli import run_inline
from zoo import case

import hierx_nb
from hierx_nb.sidecar import SCHEMA_VERSION, sidecar_path_for

SOURCES = ("exact", "pattern", "inferred")

# (zoo model, strategy, op types the exporter made without a record)
CASES = [
    ("hf_gpt2", "dynamo", {"Split"}),            # made by torch.onnx's optimizer
    ("lstm_classifier", "htp", {"Constant"}),     # folded by the TorchScript exporter
]


@pytest.mark.parametrize(("name", "strategy", "unrecorded"), CASES)
def test_coverage_is_the_known_share_of_the_node_table(name, strategy, unrecorded, tmp_path, capfd):
    c = case(name)
    out = tmp_path / f"{name}.onnx"
    result = hierx_nb.export(c.model, c.args, c.kwargs, output=out, strategy=strategy)
    nodes = result.nodes
    inferred = nodes[nodes["source"] == "inferred"]
    assert unrecorded <= set(inferred["op_type"].astype(str)), "the case must exercise inference"
    known = 100.0 * nodes["source"].isin(["exact", "pattern"]).sum() / len(nodes)
    assert 0 < known < 100 and result.coverage_pct == pytest.approx(known)

    cov = result.coverage.set_index(result.coverage["op_type"].astype(str))
    assert list(result.coverage.columns) == ["op_type", "nodes", *SOURCES, "pct"]
    by_op = nodes.assign(op=nodes["op_type"].astype(str), src=nodes["source"].astype(str)).groupby(["op", "src"]).size()
    for op, row in cov.iterrows():
        assert row["nodes"] == sum(row[s] for s in SOURCES)
        for s in SOURCES:
            assert row[s] == by_op.get((op, s), 0)
        assert row["pct"] == pytest.approx(100.0 * (row["exact"] + row["pattern"]) / row["nodes"], abs=0.01)
    assert result.summary()["sources"] == {s: int((nodes["source"] == s).sum()) for s in SOURCES}

    # The sidecar (schema 3), load() and the CLI report the same figure.
    side = json.loads(sidecar_path_for(out).read_text())
    assert side["version"] == SCHEMA_VERSION and side["coverage"]["pct"] == pytest.approx(known, abs=1e-4)
    assert side["coverage"]["by_op_type"]["inferred"] == cov["inferred"].tolist()
    loaded = hierx_nb.load(out)
    assert loaded.coverage_pct == pytest.approx(known)
    assert loaded.coverage.drop(columns="op_type").equals(result.coverage.drop(columns="op_type"))
    code, stdout, _ = run_inline(capfd, "analyze", out, "--format", "json")
    assert code == 0 and json.loads(stdout)["summary"]["coverage_pct"] == round(known, 2)
    code, stdout, _ = run_inline(capfd, "analyze", out)
    assert f"known {known:.1f}%" in stdout.splitlines()[0]
    assert f"known {known:.1f}%" in repr(result)


def test_an_old_sidecar_is_refused_with_what_to_do(tmp_path):
    c = case("mlp")
    out = tmp_path / "mlp.onnx"
    hierx_nb.export(c.model, c.args, output=out)
    side = sidecar_path_for(out)
    doc = json.loads(side.read_text())
    side.write_text(json.dumps({**doc, "version": 1}))
    with pytest.raises(hierx_nb.ExportError, match="version 1, this hierx_nb reads versions 2, 3: export the model again"):
        hierx_nb.load(out)
