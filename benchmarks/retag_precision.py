"""Measure how often each retag rule names the right module, and the share of nodes traced back, on a
tiny BERT, ViT and CNN through every transform of tests/transforms.py. Prints the README's tables.

Truth, where a node has one that retag does not read:
- the tags the transform itself kept on the node (onnxscript's optimizer, the fp16 converter, the
  quantizers on the nodes they keep, ORT's transformer optimizer, transformers' fusions, which merge
  the fused nodes' tags): retag drops every tag before placing;
- for exports by the ``htp`` strategy (TorchScript), the scope in the node's name: ORT and the
  quantizers name new nodes after the node or tensor they come from (``/encoder/layer.0/.../MatMul/
  MatMulAddFusion``, ``..._output_0_QuantizeLinear``); the longest scope prefix some source node
  has gives its module. The name is one of retag's clues (name stems), so this truth is not
  independent for the nodes the stem rule placed; it is for all the others.
A fused node is right when the truth lies in its module's subtree (it names their common ancestor).

    python benchmarks/retag_precision.py
"""
from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import onnx_ir as ir  # noqa: E402
from transforms import TRANSFORMS, feeds_for, session  # noqa: E402
from zoo import case  # noqa: E402

import hierx_nb  # noqa: E402
from hierx_nb.placement import place  # noqa: E402
from hierx_nb.retag import CONFIDENCE, MIN_TRACED, traced_share  # noqa: E402
from hierx_nb.tagging import MODULE_KEY, SOURCE_KEY  # noqa: E402

MODELS = ["hf_bert", "hf_vit", "mini_resnet"]


def scope_truth(source: ir.Model):
    scopes = {}
    for n in source.graph:
        if n.metadata_props.get(SOURCE_KEY) == "exact" and n.name.startswith("/") and "/" in n.name[1:]:
            scopes.setdefault(n.name.rsplit("/", 1)[0], n.metadata_props[MODULE_KEY])

    def truth(name: str):
        text = name
        while "/" in text:
            text = text.rsplit("/", 1)[0]
            if text in scopes:
                return scopes[text]
        return None
    return truth


def right(rule: str, module: str, truth: str) -> bool:
    return module == truth or (rule == "fused" and (module == "" or truth.startswith(module + ".")))


def _row(made: Path, src: Path, out: Path, placements, kept) -> str:
    """One cell of the transform table: nodes, % placed (the root fallback aside), % of the nodes whose
    tags the transform kept that agree (the surviving ones), and whether ORT's outputs stay identical."""
    result = hierx_nb.retag(made, src, output=out)
    rules = Counter(p.rule for p in placements.values())
    n = len(result.nodes)
    known = [(k, p) for node, p in placements.items() if (k := kept.get(node)) is not None and p.rule == "carried"]
    agree = sum(p.module == k for k, p in known)
    feeds = feeds_for(made, count=2)
    a, b = session(made), session(out)
    same = all(np.array_equal(x, y, equal_nan=True) for f in feeds for x, y in zip(a.run(None, f), b.run(None, f)))
    return (f"{n} nodes, {100 * (n - rules.get('no neighbour', 0)) / n:.0f}% placed, "
            f"{f'{agree}/{len(known)} agree' if known else 'no tags kept'}, {'identical' if same else 'DIFFERENT'}")


def main() -> None:
    placed, correct = Counter(), Counter()
    shares = []
    rows: dict[str, dict[str, str]] = {t: {} for t in TRANSFORMS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in MODELS:
            c = case(name)
            for strategy in ("dynamo", "htp"):
                src = tmp / f"{name}.{strategy}.onnx"
                hierx_nb.export(c.model, c.args, c.kwargs, output=src, strategy=strategy)
                source = ir.load(src)
                by_scope = scope_truth(source) if strategy == "htp" else (lambda _: None)
                for t, transform in TRANSFORMS.items():
                    made = tmp / f"{name}.{strategy}.{t}.onnx"
                    try:
                        transform(src, made)
                    except Exception as e:  # noqa: BLE001 - a transform that fails on this export is reported
                        print(f"  {name} ({strategy}) {t}: transform failed: {type(e).__name__}: {str(e)[:120]}")
                        continue
                    model = ir.load(made)
                    kept = {n: n.metadata_props.get(MODULE_KEY) for n in model.graph}
                    placements = place(source, model)
                    shares.append((traced_share(placements), name, strategy, t))
                    if strategy == "dynamo":
                        rows[t][name] = _row(made, src, tmp / "retagged.onnx", placements, kept)
                    for node, p in placements.items():
                        truth = kept.get(node) or by_scope(node.name or "")
                        if truth is None:
                            continue
                        placed[p.rule] += 1
                        correct[p.rule] += right(p.rule, p.module, truth)
                print(f"  {name} ({strategy}): done", flush=True)
    print("\n| transform | " + " | ".join(MODELS) + " |\n| --- |" + " ---: |" * len(MODELS))
    for t, cells in rows.items():
        print(f"| {t} | " + " | ".join(cells.get(m, "failed") for m in MODELS) + " |")
    print("\n| rule | nodes with a truth | precision | confidence given |\n| --- | ---: | ---: | ---: |")
    for rule in sorted(placed, key=lambda r: -placed[r]):
        print(f"| {rule} | {placed[rule]} | {correct[rule] / placed[rule]:.2f} | {CONFIDENCE[rule]:.2f} |")
    low = min(shares)
    print(f"\nlowest share of nodes traced back to the right source: {low[0]:.2f} ({low[1]} {low[2]} {low[3]}); "
          f"retag refuses a source below {MIN_TRACED:.2f}")


if __name__ == "__main__":
    main()
