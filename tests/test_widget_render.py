"""The explorer in headless Chromium through the standalone HTML report (no Jupyter, no network).

``result.to_html`` writes one file holding the built front end, its styles and the payload; it is
opened from disk in an offline browser context that records every request. The checks: tree,
linking (row click -> table + charts + `selected`), search, Python-side selection, the metric
selector, hostile names as literal text, a malformed payload shown as an error, and render / click
timings for a 15k-node and a 100k-node result.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import wait_for
from test_widget_payload import EVIL_MODULE, llama_like_result, small_result, with_metrics

from hierx_nb.errors import Attempt
from hierx_nb.notebook import report

pytestmark = pytest.mark.browser
ARTIFACTS = __import__("pathlib").Path(__file__).resolve().parent.parent / "test-artifacts"


def _count(page) -> int:
    return int(page.get_by_test_id("hierx-selection-count").text_content())


def _row(page, module):
    return page.locator(f'[data-testid="hierx-tree-row"][data-module="{module}"]')


def _render_ms(page) -> float:
    return float(page.get_by_test_id("hierx-root").get_attribute("data-render-ms"))


def _chart(page, testid="hierx-coverage-chart") -> dict:
    return page.evaluate(f"document.querySelector('[data-testid={testid}]').hxData")


def _modules(page) -> list[str]:
    return page.locator('[data-testid="hierx-tree-row"]').evaluate_all("rs => rs.map(r => r.dataset.module)")


def test_small_report(open_report):
    page = open_report(small_result())
    root = page.get_by_test_id("hierx-root")
    header = page.get_by_test_id("hierx-header")
    assert "Toy" in header.text_content() and "dynamo" in header.text_content()
    assert page.get_by_test_id("hierx-coverage-pct").text_content() == "83.3%"
    assert "hooks" in page.get_by_test_id("hierx-attempts").text_content()
    assert "cannot trace <dynamic> control flow & stuff" in page.get_by_test_id("hierx-attempts").text_content()
    # initial: root + depth 1 expanded -> depth <= 2 visible
    assert _modules(page) == ["", "encoder", "encoder.layer", "head", EVIL_MODULE]
    assert _count(page) == 6
    # the whole model: stacked bars by source; the untagged node is its own series
    cov = _chart(page)
    assert sorted(cov["categories"]) == sorted(["MatMul", "Add", "Relu", "Gemm", "x::<b>C</b>&"])
    assert sum(cov["series"]["exact"]) == 2 and sum(cov["series"]["pattern"]) == 1
    assert sum(cov["series"]["inferred"]) == 2 and sum(cov["series"]["untagged"]) == 1
    assert root.locator(".hx-legend").all_text_contents() == ["exact", "pattern", "inferred", "untagged"]

    # hostile names are text, not markup
    evil = _row(page, EVIL_MODULE)
    assert evil.locator(".hx-name").text_content() == EVIL_MODULE
    assert evil.locator(".hx-class").text_content() == "Evil<script>"
    assert root.locator("img, b, script").count() == 0

    # click -> selected saved, count, table and charts follow
    _row(page, "encoder").click()
    assert page.evaluate("window.hierx.model.get('selected')") == "encoder"
    assert page.evaluate("window.hierx.model.saved.at(-1).selected") == "encoder"
    assert _count(page) == 4
    assert page.get_by_test_id("hierx-node-row").count() == 4
    cov = _chart(page)
    assert sorted(cov["categories"]) == ["Add", "MatMul", "Relu"]
    assert sum(_chart(page, "hierx-confidence-chart")["series"]["nodes"]) == 4
    crumbs = page.get_by_test_id("hierx-breadcrumbs").locator("button").all_text_contents()
    assert crumbs == ["Toy", "encoder"]

    # expand, select the markup-named module: literal in tree, table and breadcrumbs
    page.get_by_test_id("hierx-expand-all").click()
    _row(page, "encoder.layer.1.<b>x</b>").click()
    assert _count(page) == 1
    assert _row(page, "encoder.layer.1.<b>x</b>").locator(".hx-name").text_content() == "<b>x</b>"
    cells = page.get_by_test_id("hierx-node-row").first.locator("td").all_text_contents()
    assert cells == ["/encoder/layer.1/<b>x</b>/Relu", "Relu", "encoder.layer.1.<b>x</b>", "0.250", "inferred"]
    assert page.get_by_test_id("hierx-breadcrumbs").locator("button").last.text_content() == "<b>x</b>"
    assert "Relu" in page.get_by_test_id("hierx-coverage-chart").text_content()
    assert root.locator("b").count() == 0

    # breadcrumb click goes up
    page.get_by_test_id("hierx-breadcrumbs").locator("button", has_text="encoder").first.click()
    assert page.evaluate("window.hierx.model.get('selected')") == "encoder"

    # collapse all -> only root + depth 1
    page.get_by_test_id("hierx-collapse-all").click()
    assert page.locator('[data-testid="hierx-tree-row"]').count() == 4

    # search: class "A&B" shows the match and its ancestors
    page.get_by_test_id("hierx-search").fill("a&b")
    wait_for(page, "() => document.querySelectorAll('[data-testid=hierx-tree-row]').length === 5")
    assert _modules(page) == ["", "encoder", "encoder.layer", "encoder.layer.1", "encoder.layer.1.<b>x</b>"]
    page.get_by_test_id("hierx-search").fill("onerror")
    wait_for(page, "() => document.querySelectorAll('[data-testid=hierx-tree-row]').length === 2")
    page.get_by_test_id("hierx-search").fill("")
    wait_for(page, "() => document.querySelectorAll('[data-testid=hierx-tree-row]').length >= 4")

    # a change from Python (the kernel sets the trait)
    page.evaluate("window.hierx.model.set('selected', 'head')")
    assert _count(page) == 1
    assert page.get_by_test_id("hierx-node-row").first.locator("td").first.text_content() == "/head/Gemm ünïcødé"
    page.evaluate("window.hierx.model.set('selected', '')")
    assert _count(page) == 6
    assert page.get_by_test_id("hierx-node-row").last.locator("td").nth(2).text_content() == "untagged"
    # op types are literal text on the axis and in the table
    assert "x::<b>C</b>&" in page.get_by_test_id("hierx-coverage-chart").text_content()
    assert page.get_by_test_id("hierx-node-row").last.locator("td").nth(1).text_content() == "x::<b>C</b>&"

    # clicking a coverage bar filters the table by op type; clicking the chip's x clears it
    k = _chart(page)["categories"].index("Relu")
    page.locator(f'[data-testid=hierx-coverage-chart] .hx-bar[data-k="{k}"]').click()
    assert page.get_by_test_id("hierx-node-row").count() == 1
    assert "Relu" in page.get_by_test_id("hierx-op-filter").text_content()
    page.get_by_test_id("hierx-op-filter").locator("button").click()
    assert page.get_by_test_id("hierx-node-row").count() == 6

    # no metrics measured: the selector offers nodes only
    options = page.get_by_test_id("hierx-metric").locator("option")
    # latency and divergence are listed before they are measured, disabled, saying how to fill them
    assert options.all_text_contents() == ["nodes", "latency — run result.profile()",
                                           "divergence — run result.validate(per_module=True)",
                                           "compare — run result.compare(other)"]
    assert page.get_by_test_id("hierx-metric").locator("option:enabled").all_text_contents() == ["nodes"]
    assert page.dialogs == [] and page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_small.png"), full_page=True)


def test_switched_settings_are_shown_as_text(open_report):
    result = small_result()
    assert open_report(result, "plain").get_by_test_id("hierx-switched").count() == 0  # nothing switched
    change = "experts_implementation: grouped_mm -> batched_mm (<b>no</b> ONNX op)"
    result.attempts[-1] = Attempt("dynamo", True, "", 0.75, switched=(change,))
    page = open_report(result, "switched")
    assert page.get_by_test_id("hierx-switched").text_content() == f"switched for the export: {change}"
    assert page.get_by_test_id("hierx-header").locator("b").count() == 0


def test_metric_selector(open_report):
    page = open_report(with_metrics(small_result()), "metrics")
    root = page.get_by_test_id("hierx-root")
    warnings = page.get_by_test_id("hierx-warnings").locator("li").all_text_contents()
    assert warnings[0].startswith("output 0 differs from PyTorch by 0.9 <b>")
    assert warnings[-1] == "first divergent module: encoder.layer.1.<b>x</b>"
    metric = page.get_by_test_id("hierx-metric")
    assert metric.locator("option:enabled").all_text_contents() == ["nodes", "latency (ms)", "divergence (max |Δ|)"]

    metric.select_option("latency")
    assert root.get_attribute("data-metric") == "latency"
    heads = root.locator(".hx-tree-head span").all_text_contents()
    assert heads == ["module", "class", "self ms", "total ms", "share"]
    enc = _row(page, "encoder").locator(".hx-num").all_text_contents()
    assert enc == ["0.000", "3.50", "87.5%"]
    assert "--hx-bar: 87.5%" in _row(page, "encoder").locator(".hx-barcell").get_attribute("style")
    ops = _chart(page)
    assert ops["categories"] == ["MatMul", "Add", "Relu", "Gemm"] and ops["series"]["time"] == [2.5, 0.6, 0.5, 0.4]
    by_mod = _chart(page, "hierx-confidence-chart")
    assert by_mod["categories"] == ["encoder", "head", "(own nodes)"] and by_mod["series"]["time"] == [3.5, 0.4, 0.1]
    # a click: the table and the by-module chart follow the selection
    _row(page, "encoder").click()
    page.get_by_test_id("hierx-expand-all").click()
    _row(page, "encoder.layer.1").click()
    assert _count(page) == 2 and page.get_by_test_id("hierx-node-row").count() == 2
    by_mod = _chart(page, "hierx-confidence-chart")
    assert by_mod["categories"] == ["(own nodes)", "<b>x</b>"] and by_mod["series"]["time"] == [1.0, 0.5]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report_latency.png"), full_page=True)

    metric.select_option("divergence")
    heads = root.locator(".hx-tree-head span").all_text_contents()
    assert heads == ["module", "class", "nodes", "max |Δ|", "ok"]
    assert _row(page, "head").locator(".hx-num").all_text_contents() == ["1", "0.900", "✗"]
    assert _row(page, "encoder.layer.0").locator(".hx-num").all_text_contents() == ["2", "1.0e-6", "✓"]
    assert _chart(page)["categories"] == ["<b>x</b>"]  # the children of encoder.layer.1 with a difference
    page.get_by_test_id("hierx-breadcrumbs").locator("button").first.click()
    assert set(_chart(page)["categories"]) == {"head"}  # root's children compared: head only
    assert page.get_by_test_id("hierx-confidence-chart").is_hidden()

    # Python refreshes the metrics (refresh_metrics): the view follows, the choice is kept
    page.evaluate("""() => { const m = window.hierx.model;
        m.set('metrics', {}); m.set('header', {...m.get('header'), warnings: []}); }""")
    assert metric.locator("option:enabled").all_text_contents() == ["nodes"]
    assert root.get_attribute("data-metric") == "nodes"
    assert page.get_by_test_id("hierx-warnings").count() == 0
    assert root.locator("b").count() == 0
    assert page.errors == []
    page.screenshot(path=str(ARTIFACTS / "report_metrics_cleared.png"), full_page=True)


def test_bad_payload_shows_an_error(open_report):
    """A payload that breaks the contract says what is wrong instead of drawing an empty tree."""
    html = report.render_html(small_result())
    start = html.index('<script type="application/json" id="hierx-data">') + len('<script type="application/json" id="hierx-data">')
    end = html.index("</script>", start)
    data = json.loads(html[start:end])
    data["nodes"]["n"] += 1
    page = open_report(html=html[:start] + json.dumps(data) + html[end:], name="bad", expect_error=True)
    err = page.get_by_test_id("hierx-error").text_content()
    assert "malformed" in err and re.search(r"nodes.module has 24 bytes, expected 28", err), err
    assert page.get_by_test_id("hierx-tree-row").count() == 0


def _timings(page, r, big: str, deep: str) -> dict:
    t = {"first render (decode + tree + table + charts)": page.evaluate("window.hierx.firstRenderMs")}
    assert _count(page) == len(r.nodes)
    assert page.get_by_test_id("hierx-node-row").count() == 100
    page.get_by_test_id("hierx-expand-all").click()
    t[f"expand all ({len(r.modules):,} modules)"] = _render_ms(page)
    assert page.locator('[data-testid="hierx-tree-row"]').count() < 100  # virtualized
    page.get_by_test_id("hierx-collapse-all").click()
    t["collapse all"] = _render_ms(page)
    clicks = []
    for name in (big, "", big):
        _row(page, name).click()
        clicks.append(_render_ms(page))
    t[f"click {big} (~all nodes) -> table + charts"] = float(np.median(clicks))
    t["  of which subtree stats (JS recompute)"] = float(page.get_by_test_id("hierx-root").get_attribute("data-stats-ms"))
    page.evaluate(f"window.hierx.model.set('selected', {json.dumps(deep)})")
    t["select from python, deep module (revealed)"] = _render_ms(page)
    assert _row(page, deep).count() == 1
    assert _count(page) == int(r.nodes["module"].str.startswith(deep).sum())
    page.get_by_test_id("hierx-search").fill("rotary")
    wait_for(page, "() => document.querySelector('.hx-matches').textContent.includes('match')")
    t["search 'rotary'"] = _render_ms(page)
    return t


def _print(title, timings):
    print(f"\n{title} (ms; the machine is shared, figures are noisy):")
    for k, v in timings.items():
        print(f"  {k:52s} {v:8.1f}")


def test_large_report_timings(open_report):
    r = llama_like_result()
    page = open_report(r, "large")
    t = _timings(page, r, "model", "model.layers.42.mlp")
    page.evaluate("window.hierx.model.set('selected', '')")
    page.get_by_test_id("hierx-next").click()
    assert "101–200" in page.get_by_test_id("hierx-page-info").text_content()
    page.get_by_test_id("hierx-sort").select_option("conf-asc")
    confs = [float(c) for c in page.locator('[data-testid="hierx-node-row"] td:nth-child(4)').all_text_contents()]
    assert confs == sorted(confs)
    _print(f"15k-node report ({len(r.nodes):,} nodes)", t)
    assert t["first render (decode + tree + table + charts)"] < 1000
    assert t["  of which subtree stats (JS recompute)"] < 100
    assert t["click model (~all nodes) -> table + charts"] < 100
    assert page.errors == []
    page.screenshot(path=str(ARTIFACTS / "report_large.png"), full_page=True)


def test_100k_nodes_timings(open_report):
    """A 100k-node result: render at most 1 s, a click at most 100 ms (asserted with 2x headroom)."""
    r = llama_like_result(layers=468)  # 468 x 214 + 1 nodes, 6.5k modules
    assert len(r.nodes) >= 100_000
    page = open_report(r, "huge")
    t = _timings(page, r, "model", "model.layers.400.self_attn.q_proj")
    _print(f"100k-node report ({len(r.nodes):,} nodes, {len(r.modules):,} modules)", t)
    targets = {"first render (decode + tree + table + charts)": 1000, "click model (~all nodes) -> table + charts": 100}
    over = {k: round(t[k], 1) for k, limit in targets.items() if t[k] > 2 * limit}
    assert not over, f"over target x2: {over} (targets {targets})"
    assert page.errors == []


def test_cli_report_offline(open_report, tmp_path):
    """`hierx report FILE.onnx` of a real export, opened from disk with the network off: tree, charts
    and node table; clicks work; a module named with markup is literal text and runs no script."""
    import torch

    import hierx_nb
    from hierx_nb import cli

    class Scorer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32))
            self.add_module(EVIL_MODULE, torch.nn.Linear(32, 4))

        def forward(self, x):
            return getattr(self, EVIL_MODULE)(self.body(x)).softmax(-1)

    onnx_path = tmp_path / "scorer.onnx"
    hierx_nb.export(Scorer().eval(), (torch.randn(2, 16),), output=onnx_path)
    assert cli.main(["report", str(onnx_path), "-o", str(tmp_path / "cli.html")]) == 0
    result = hierx_nb.load(onnx_path)
    page = open_report(html=(tmp_path / "cli.html").read_text(encoding="utf-8"), name="cli")
    assert _modules(page)[:2] == ["", "body"] and EVIL_MODULE in _modules(page)
    assert _count(page) == len(result.nodes)
    assert page.get_by_test_id("hierx-node-row").count() == len(result.nodes)
    assert sum(sum(v) for v in _chart(page)["series"].values()) == len(result.nodes)
    _row(page, EVIL_MODULE).click()
    mine = result.mapping(EVIL_MODULE)
    assert _count(page) == len(mine) >= 1
    assert [r.locator("td").nth(2).text_content() for r in page.get_by_test_id("hierx-node-row").all()] == [EVIL_MODULE] * len(mine)
    assert sorted(_chart(page)["categories"]) == sorted(set(mine["op_type"]))
    assert _row(page, EVIL_MODULE).locator(".hx-name").text_content() == EVIL_MODULE
    assert page.locator("img, b").count() == 0 and page.dialogs == [] and page.errors == []
    page.screenshot(path=str(ARTIFACTS / "report_cli.png"), full_page=True)


def test_real_divergence_in_report(open_report, tmp_path):
    """validate(per_module=True) on a real export: the divergence metric shows its table in the tree."""
    import torch

    import hierx_nb

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    r = hierx_nb.export(model, (torch.randn(2, 8),), output=tmp_path / "m.onnx")
    div = r.validate(per_module=True)
    page = open_report(r, "divergence")
    page.get_by_test_id("hierx-metric").select_option("divergence")
    assert page.get_by_test_id("hierx-root").get_attribute("data-metric") == "divergence"
    compared = div.dropna(subset=["max_abs_diff"])
    assert len(compared) >= 3
    for rec in compared.itertuples():
        cells = _row(page, str(rec.module)).locator(".hx-num").all_text_contents()
        shown = float(cells[1]) if cells[1] not in ("0", "–") else 0.0
        assert shown == pytest.approx(rec.max_abs_diff, rel=0.06, abs=1e-12), (rec.module, cells, rec.max_abs_diff)
        ok = None if rec.ok is None or rec.ok != rec.ok else bool(rec.ok)
        assert cells[2] == {True: "✓", False: "✗", None: "–"}[ok]
    assert page.errors == []
