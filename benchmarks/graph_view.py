"""The explorer's graph view against the issue's limits, in headless Chromium through the offline
HTML report: the first graph and an expand on a 12-layer BERT (hidden size 32: the graph, not the
weights, sets the cost), a module view of 2,000 nodes (own nodes beyond 300 fold into one box), the
100k-node result, and the widget bundle a saved notebook stores once per explorer. Each timing is
the median of --rounds page loads; prints figure, target and ratio (<= 1 meets the target).

    python benchmarks/graph_view.py [--rounds 3]

The saved five-explorer notebook's size is measured by tests/test_browser.py
(test_saved_notebook_is_light_and_reopens), which runs the notebook in a kernel.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

GRAPH = '[data-testid="hierx-graph"]'
LAUNCH = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def _bert12(folder: Path):
    import torch
    from transformers import BertConfig, BertModel

    import hierx_nb

    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=12, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    return hierx_nb.export(BertModel(config).eval(), output=folder / "bert12.onnx")


def _open(browser, path: Path):
    ctx = browser.new_context(offline=True, viewport={"width": 1280, "height": 1000})
    page = ctx.new_page()
    page.goto(path.as_uri())
    deadline = time.monotonic() + 30
    while not page.evaluate("() => window.hierx && window.hierx.firstRenderMs !== undefined"):
        assert time.monotonic() < deadline, "the report did not render"
        page.wait_for_timeout(30)
    return ctx, page


def _ms(page, attr: str) -> float:
    return float(page.locator(GRAPH).get_attribute(attr))


def measure(browser, path: Path, steps) -> dict:
    ctx, page = _open(browser, path)
    try:
        out = {"first render (all views)": page.evaluate("window.hierx.firstRenderMs"), "first graph": _ms(page, "data-graph-ms")}
        out.update(steps(page))
        return out
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from test_widget_payload import llama_like_result, with_chain_graph

    from hierx_nb.notebook.widget import ESM_PATH

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bert = _bert12(folder)
        bert.to_html(folder / "bert12.html")
        flat = with_chain_graph(llama_like_result(layers=10, nodes_per_layer=200), fan_in=5)
        flat.nodes = flat.nodes.assign(module="model.layers.3")
        flat.to_html(folder / "flat.html", selected="model.layers.3")
        big = with_chain_graph(llama_like_result(layers=468), fan_in=7)
        big.to_html(folder / "huge.html")

        def expand_bert(page):
            times = []
            for name in ("encoder", "encoder.layer", "encoder.layer.5"):
                page.locator(f'{GRAPH} .hx-g-module[data-graph-module="{name}"]').click()
                times.append(_ms(page, "data-toggle-ms"))
            return {"expand (max of encoder, layer list, layer 5)": max(times)}

        def expand_model(page):
            page.locator(f'{GRAPH} .hx-g-module[data-graph-module="model"]').click()
            return {"expand model": _ms(page, "data-toggle-ms")}

        cases = [("12-layer BERT", folder / "bert12.html", expand_bert,
                  {"first graph": 1000, "expand (max of encoder, layer list, layer 5)": 200}),
                 (f"2,000-node module ({len(flat.nodes):,} nodes, 300 drawn)", folder / "flat.html", lambda p: {},
                  {"first graph": 1000}),
                 (f"100k-node result ({len(big.nodes):,} nodes)", folder / "huge.html", expand_model,
                  {"first render (all views)": 1000, "first graph": 1000, "expand model": 200})]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=LAUNCH)
            print(f"graph view, median of {args.rounds} page loads (ms; a shared machine is noisy):")
            for title, path, steps, targets in cases:
                runs = [measure(browser, path, steps) for _ in range(args.rounds)]
                print(f"  {title}")
                for key in runs[0]:
                    v = statistics.median(r[key] for r in runs)
                    t = targets.get(key)
                    print(f"    {key:46s} {v:8.1f}" + (f"   target {t:5d}   ratio {v / t:.2f}" if t else ""))
            browser.close()
    size = ESM_PATH.stat().st_size
    print(f"widget bundle (stored once per explorer in a saved notebook): {size / 1e3:.1f} kB; "
          f"five explorers: {5 * size / 1e6:.2f} MB of the 1.5 MB budget for bundles alone")


if __name__ == "__main__":
    main()
