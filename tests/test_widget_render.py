"""Render the built widget in headless Chromium with a fake anywidget model (no Jupyter needed).

Checks the tree, linking (row click -> table + charts + `selected`), search, Python-side selection,
that hostile names show as literal text, and prints render timings for a 15k-node / 1k-module export.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from test_widget_payload import EVIL_MODULE, llama_like_result, small_result

import hierx_nb.notebook.widget as widget_mod

HERE = Path(__file__).parent
ARTIFACTS = HERE.parent / "test-artifacts"

pytestmark = pytest.mark.browser


def _jsonable(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def open_widget(browser, tmp_path):
    servers = []

    def _open(result, name="page"):
        d = tmp_path / name
        d.mkdir()
        shutil.copy(HERE / "widget_harness.html", d / "index.html")
        shutil.copy(widget_mod.ESM_PATH, d / "widget.js")
        w = widget_mod.HierxExplorer.from_result(result)
        state = {k: _jsonable(getattr(w, k)) for k in ("header", "tree", "nodes", "selected")}
        (d / "payload.json").write_text(json.dumps(state))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(d)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.dialogs = []
        page.on("dialog", lambda dlg: (page.dialogs.append(dlg.message), dlg.dismiss()))
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{srv.server_address[1]}/index.html")
        page.wait_for_function("window.__ready || window.__error", timeout=20_000)
        err = page.evaluate("window.__error")
        assert not err, err
        return page

    yield _open
    for s in servers:
        s.shutdown()


def _count(page) -> int:
    return int(page.get_by_test_id("hierx-selection-count").text_content())


def _row(page, module):
    return page.locator(f'[data-testid="hierx-tree-row"][data-module="{module}"]')


def _render_ms(page) -> float:
    return float(page.get_by_test_id("hierx-root").get_attribute("data-render-ms"))


def test_small_widget(open_widget):
    page = open_widget(small_result())
    root = page.get_by_test_id("hierx-root")
    header = page.get_by_test_id("hierx-header")
    assert "Toy" in header.text_content() and "dynamo" in header.text_content()
    assert "hooks" in page.get_by_test_id("hierx-attempts").text_content()
    assert "cannot trace <dynamic> control flow & stuff" in page.get_by_test_id("hierx-attempts").text_content()
    # initial: root + depth 1 expanded -> depth <= 2 visible
    modules = page.locator('[data-testid="hierx-tree-row"]').evaluate_all("rs => rs.map(r => r.dataset.module)")
    assert modules == ["", "encoder", "encoder.layer", "head", EVIL_MODULE]
    assert _count(page) == 6

    # hostile names are text, not markup
    evil = _row(page, EVIL_MODULE)
    assert evil.locator(".hx-name").text_content() == EVIL_MODULE
    assert evil.locator(".hx-class").text_content() == "Evil<script>"
    assert root.locator("img, b, script:not(style)").count() == 0

    # click -> selected saved, count, table and charts follow
    _row(page, "encoder").click()
    assert page.evaluate("window.__model.get('selected')") == "encoder"
    assert page.evaluate("window.__model.saved.at(-1).selected") == "encoder"
    assert _count(page) == 4
    assert page.get_by_test_id("hierx-node-row").count() == 4
    cov_x = page.evaluate("document.querySelector('[data-testid=hierx-coverage-chart]').data[0].x")
    assert sorted(cov_x) == ["Add", "MatMul", "Relu"]
    hist = page.evaluate("document.querySelector('[data-testid=hierx-confidence-chart]').data[0].y")
    assert sum(hist) == 4
    crumbs = page.get_by_test_id("hierx-breadcrumbs").locator("button").all_text_contents()
    assert crumbs == ["Toy", "encoder"]

    # expand, select the markup-named module: literal in tree, table and breadcrumbs
    page.get_by_test_id("hierx-expand-all").click()
    _row(page, "encoder.layer.1.<b>x</b>").click()
    assert _count(page) == 1
    assert _row(page, "encoder.layer.1.<b>x</b>").locator(".hx-name").text_content() == "<b>x</b>"
    cells = page.get_by_test_id("hierx-node-row").first.locator("td").all_text_contents()
    assert cells == ["/encoder/layer.1/<b>x</b>/Relu", "Relu", "encoder.layer.1.<b>x</b>", "0.250"]
    assert page.get_by_test_id("hierx-breadcrumbs").locator("button").last.text_content() == "<b>x</b>"
    svg_text = page.get_by_test_id("hierx-coverage-chart").text_content()
    assert "Relu" in svg_text
    assert root.locator("b").count() == 0

    # breadcrumb click goes up
    page.get_by_test_id("hierx-breadcrumbs").locator("button", has_text="encoder").first.click()
    assert page.evaluate("window.__model.get('selected')") == "encoder"

    # collapse all -> only root + depth 1
    page.get_by_test_id("hierx-collapse-all").click()
    assert page.locator('[data-testid="hierx-tree-row"]').count() == 4

    # search: class "A&B" shows the match and its ancestors
    page.get_by_test_id("hierx-search").fill("a&b")
    page.wait_for_function("document.querySelectorAll('[data-testid=hierx-tree-row]').length === 5")
    modules = page.locator('[data-testid="hierx-tree-row"]').evaluate_all("rs => rs.map(r => r.dataset.module)")
    assert modules == ["", "encoder", "encoder.layer", "encoder.layer.1", "encoder.layer.1.<b>x</b>"]
    page.get_by_test_id("hierx-search").fill("onerror")
    page.wait_for_function("document.querySelectorAll('[data-testid=hierx-tree-row]').length === 2")
    page.get_by_test_id("hierx-search").fill("")
    page.wait_for_function("document.querySelectorAll('[data-testid=hierx-tree-row]').length >= 4")

    # a change from Python (the kernel sets the trait)
    page.evaluate("window.__model.set('selected', 'head')")
    assert _count(page) == 1
    assert page.get_by_test_id("hierx-node-row").first.locator("td").first.text_content() == "/head/Gemm ünïcødé"
    page.evaluate("window.__model.set('selected', '')")
    assert _count(page) == 6
    assert page.get_by_test_id("hierx-node-row").last.locator("td").nth(2).text_content() == "untagged"
    # op types reach plotly escaped: shown literally on the axis, in the table too
    assert "x::<b>C</b>&" in page.get_by_test_id("hierx-coverage-chart").text_content()
    assert page.get_by_test_id("hierx-node-row").last.locator("td").nth(1).text_content() == "x::<b>C</b>&"
    untagged = page.evaluate("document.querySelector('[data-testid=hierx-coverage-chart]').data[1].y")
    assert sum(untagged) == 1

    # clicking a coverage bar filters the table by op type; clicking the chip's x clears it
    idx = page.evaluate("document.querySelector('[data-testid=hierx-coverage-chart]').data[0].x.indexOf('Relu')")
    page.evaluate(f"document.querySelector('[data-testid=hierx-coverage-chart]').emit('plotly_click', "
                  f"{{points: [{{pointIndex: {idx}}}]}})")
    assert page.get_by_test_id("hierx-node-row").count() == 1
    assert "Relu" in page.get_by_test_id("hierx-op-filter").text_content()
    page.get_by_test_id("hierx-op-filter").locator("button").click()
    assert page.get_by_test_id("hierx-node-row").count() == 6

    assert page.dialogs == [] and page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget_small.png"), full_page=True)


def test_large_widget_timings(open_widget):
    r = llama_like_result()
    page = open_widget(r, "large")
    first = page.evaluate("window.__firstRenderMs")
    timings = {"first render (decode + tree + table + charts)": first}
    assert _count(page) == len(r.nodes)
    assert page.get_by_test_id("hierx-node-row").count() == 100
    assert "1–100 of" in page.get_by_test_id("hierx-page-info").text_content()

    page.get_by_test_id("hierx-expand-all").click()
    timings["expand all (986 modules)"] = _render_ms(page)
    assert page.locator('[data-testid="hierx-tree-row"]').count() < 100  # virtualized

    page.get_by_test_id("hierx-collapse-all").click()
    timings["collapse all"] = _render_ms(page)
    _row(page, "model").click()
    timings["select model (~15k nodes)"] = _render_ms(page)
    timings["  of which subtree stats (JS recompute)"] = float(
        page.get_by_test_id("hierx-root").get_attribute("data-stats-ms"))
    page.evaluate("window.__model.set('selected', 'model.layers.42.mlp')")
    timings["select from python, deep module (revealed)"] = _render_ms(page)
    assert _row(page, "model.layers.42.mlp").count() == 1
    assert _count(page) == int((r.nodes["module"].str.startswith("model.layers.42.mlp")).sum())
    page.evaluate("window.__model.set('selected', '')")
    timings["select root again"] = _render_ms(page)

    page.get_by_test_id("hierx-search").fill("rotary")
    page.wait_for_function("document.querySelector('.hx-matches').textContent.startsWith('70 ')")
    timings["search 'rotary'"] = _render_ms(page)

    page.get_by_test_id("hierx-next").click()
    assert "101–200" in page.get_by_test_id("hierx-page-info").text_content()
    page.get_by_test_id("hierx-sort").select_option("conf-asc")
    confs = [float(c) for c in page.locator('[data-testid="hierx-node-row"] td:nth-child(4)').all_text_contents()]
    assert confs == sorted(confs)

    print("\nrender timings (ms):")
    for k, v in timings.items():
        print(f"  {k:48s} {v:8.1f}")
    assert first < 1000
    assert timings["  of which subtree stats (JS recompute)"] < 100
    assert timings["expand all (986 modules)"] < 200
    assert timings["select model (~15k nodes)"] < 300  # two Plotly.react calls dominate (~40-100 ms here)
    assert page.errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget_large.png"), full_page=True)
