"""Measure how often each way of placing a node without PyTorch's record names the right module,
on the model zoo (tests/zoo.py). Prints one table row per rule: how many nodes it placed, its
precision, and the confidence hierx_nb gives it (which should be that precision).

- Inference from graph neighbours (source ``inferred``): on each zoo export (``auto``), a random
  share of the nodes that carry PyTorch's record (source ``exact``) have it hidden; inference runs
  on the rest; a hidden node counts as right when the inferred module equals its record.
- fx matches (source ``pattern``): on each model fx can trace, fx's module for a node against the
  exact module dynamo records for the same node (fx tags dynamo's graph: nodes pair up by name);
  also fx's time against dynamo's, and its agreement on all nodes.

    python benchmarks/calibrate_confidence.py [--hide 0.1] [--seeds 5] [--models a,b,...]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from zoo import ZOO, case  # noqa: E402

import hierx_nb  # noqa: E402
from hierx_nb import attribution  # noqa: E402
from hierx_nb.attribution import EXACT, NodeAttribution, all_nodes  # noqa: E402
from hierx_nb.hierarchy import ModuleTree  # noqa: E402
from hierx_nb.strategies import fx  # noqa: E402
from hierx_nb.tagging import MODULE_KEY, SOURCE_KEY  # noqa: E402


def inference_counts(names, hide: float, seeds: int) -> tuple[Counter, Counter]:
    placed, right = Counter(), Counter()
    for name in names:
        c = case(name)
        try:
            result = hierx_nb.export(c.model, c.args, c.kwargs, output=None)
        except hierx_nb.ExportError:
            continue
        model, tree = result.onnx_model, ModuleTree(c.model)
        truth = {n: n.metadata_props[MODULE_KEY] for n in all_nodes(model) if n.metadata_props.get(SOURCE_KEY) == EXACT}
        for seed in range(seeds):
            rng = random.Random(seed)
            hidden = {n for n in truth if rng.random() < hide}
            known = {n: NodeAttribution(m, 1.0, EXACT) for n, m in truth.items() if n not in hidden}
            for node, (module, rule) in attribution.infer(model, known, tree).items():
                if node in hidden:
                    placed[rule] += 1
                    right[rule] += module == truth[node]
        print(f"  {name}: {result.strategy}, {len(truth)} nodes with a record", flush=True)
    return placed, right


def fx_counts(names) -> tuple[Counter, Counter]:
    placed, right = Counter(), Counter()
    ratios = []
    for name in names:
        c = case(name)
        try:
            by_fx = hierx_nb.export(c.model, c.args, c.kwargs, output=None, strategy="fx")
            exact = hierx_nb.export(c.model, c.args, c.kwargs, output=None, strategy="dynamo")
        except hierx_nb.ExportError:
            continue
        truth = {r.node: r.module for r in exact.nodes.itertuples() if r.source == EXACT and r.node}
        rule_of = {v: k for k, v in fx.CATEGORY_CONFIDENCE.items()}
        for r in by_fx.nodes.itertuples():
            if r.source != "pattern" or r.node not in truth:
                continue
            rule = f"fx {rule_of.get(r.confidence, 'decomposition/shared')}"
            placed[rule] += 1
            right[rule] += r.module == truth[r.node]
        ratios.append(by_fx.seconds / exact.seconds)
        agree = (by_fx.nodes["module"].values == exact.nodes["module"].values).mean()
        print(f"  {name}: fx on {len(by_fx.nodes)} nodes, same module as dynamo on {agree:.1%}, "
              f"{by_fx.seconds:.2f} s vs dynamo {exact.seconds:.2f} s", flush=True)
    if ratios:
        print(f"fx time / dynamo time: median {statistics.median(ratios):.2f} over {len(ratios)} models")
    return placed, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hide", type=float, default=0.1, help="share of recorded nodes hidden per seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default=",".join(ZOO))
    opts = parser.parse_args()
    names = opts.models.split(",")
    print(f"hiding {opts.hide:.0%} of the recorded nodes, {opts.seeds} seeds, {len(names)} zoo models")
    placed, right = inference_counts(names, opts.hide, opts.seeds)
    fx_placed, fx_right = fx_counts([n for n in names if case(n).fx_traceable])
    print("\n| rule | nodes | precision | confidence given |\n| --- | ---: | ---: | ---: |")
    for rule in sorted(placed, key=lambda r: -placed[r]):
        print(f"| {rule} | {placed[rule]} | {right[rule] / placed[rule]:.2f} | {attribution.CONFIDENCE[rule]:.2f} |")
    for rule in sorted(fx_placed, key=lambda r: -fx_placed[r]):
        print(f"| {rule} | {fx_placed[rule]} | {fx_right[rule] / fx_placed[rule]:.2f} | |")


if __name__ == "__main__":
    main()
