"""Inference rules and their confidences: what the README's calibration table says is what the code does."""
from __future__ import annotations

import re
from pathlib import Path

from zoo import case

import hierx_nb
from hierx_nb import attribution
from hierx_nb.attribution import EXACT, INFERRED, NodeAttribution
from hierx_nb.hierarchy import ModuleTree

README = Path(__file__).parent.parent / "README.md"
MEASURED = {"neighbours agree": "neighbours agree", "common ancestor": "common ancestor of disagreeing neighbours"}


def test_the_readme_table_gives_the_code_s_confidences():
    text = README.read_text()
    for rule, label in MEASURED.items():
        row = re.search(rf"^\| {re.escape(label)} \| (\d+) \| ([0-9.]+) \| ([0-9.]+) \|$", text, re.M)
        assert row, label
        nodes, precision, confidence = int(row[1]), float(row[2]), float(row[3])
        assert nodes > 100 and confidence == precision == attribution.CONFIDENCE[rule]


def test_hidden_records_are_inferred_back_by_their_rule():
    c = case("attention_block")
    result = hierx_nb.export(c.model, c.args, output=None, strategy="dynamo")
    model, tree = result.onnx_model, ModuleTree(c.model)
    truth = {n: n.metadata_props["hierx.module"] for n in attribution.all_nodes(model)
             if n.metadata_props["hierx.source"] == EXACT}
    hidden = list(truth)[5::7]
    known = {n: NodeAttribution(m, 1.0, EXACT) for n, m in truth.items() if n not in hidden}
    found = attribution.infer(model, known, tree)
    assert set(hidden) <= set(found)
    right = sum(found[n][0] == truth[n] for n in hidden)
    assert any(found[n][1] == "neighbours agree" for n in hidden) and right >= 0.5 * len(hidden)
    completed = attribution.complete(model, known, tree)
    assert all(completed[n].source == INFERRED and completed[n].confidence == attribution.CONFIDENCE[found[n][1]]
               for n in hidden)
    assert not any(n in known for n in hidden)  # complete() returned a new mapping; the given one is unchanged
