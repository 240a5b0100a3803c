"""A real JupyterLab in headless Chromium: run the notebooks, use the explorer, measure it.

A JupyterLab server is started on 127.0.0.1 (free port, token) over a temporary copy of
notebooks/, with its settings, workspaces and runtime files in temporary folders and a kernelspec
that runs this interpreter. The quickstart notebook is run with Run > Run All Cells; the test then
drives the explorer like a user (expand, click, search) and checks what it shows against the
sidecar the notebook wrote. Then the LLaMA-70B-shaped structure notebook is run and explored.

Printed (the figures the issue asks for):
* cell finished -> tree rendered: from the moment the cell's prompt shows its execution count to
  the first tree row in its output (negative: the tree was up before the prompt updated);
* click -> table and charts updated: from the click event to the end of the synchronous update
  (count, tree, table, both SVG charts), and to the next painted frame.

Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_notebooks import write_kernelspec

import hierx_nb
from hierx_nb.hierarchy import subtree_mask

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
GIANT_LAYERS = int(os.environ.get("HIERX_GIANT_LAYERS", "80"))

pytestmark = pytest.mark.browser

# User settings: no news/update toasts, every cell in the DOM (no virtual scrolling of the
# notebook, so outputs below the fold are rendered), no autosave rewriting the copied notebooks.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/palette.jupyterlab-settings": {},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A local Jupyter server: JupyterLab, or Notebook 7 with ``app="notebook"`` (same settings)."""

    def __init__(self, root: Path, base: Path, app: str = "jupyterlab"):
        self.root, self.base, self.app = root, base, app
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = base / "out"
        self.log = base / "lab.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        settings = self.base / "settings"
        # Notebook 7 fails on settings of plugins it lacks: it gets JupyterLab's defaults.
        for rel, value in (LAB_SETTINGS if self.app == "jupyterlab" else {}).items():
            f = settings / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        share = self.base / "share"
        write_kernelspec(share, "python3")  # the notebooks' own kernelspec name, pointing at this interpreter
        for d in ("config", "runtime", "workspaces", "ipython", "data"):
            (self.base / d).mkdir(exist_ok=True)
        self.out.mkdir(exist_ok=True)
        env = dict(os.environ,
                   JUPYTER_CONFIG_DIR=str(self.base / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.base / "runtime"),
                   JUPYTER_DATA_DIR=str(self.base / "data"),  # its notebook-trust database too
                   JUPYTER_PATH=str(share),
                   JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.base / "workspaces"),
                   IPYTHONDIR=str(self.base / "ipython"),
                   HIERX_OUT=str(self.out),
                   HIERX_GIANT_LAYERS=str(GIANT_LAYERS),
                   PYDEVD_DISABLE_FILE_VALIDATION="1")
        env.pop("JUPYTER_TOKEN", None)
        cmd = [sys.executable, "-m", self.app, "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--ServerApp.root_dir={self.root}", f"--IdentityProvider.token={self.token}",
               "--ServerApp.open_browser=False", "--ServerApp.terminals_enabled=False"]
        if self.app == "jupyterlab":
            cmd += ["--LabApp.expose_app_in_browser=True", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                    "--LabApp.extension_manager=readonly"]
        else:  # Notebook 7
            cmd += ["--JupyterNotebookApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            cmd.append("--allow-root")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.root, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not start in 60 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:  # a clean shutdown also stops the kernels it started
            req = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    for nb in NOTEBOOK_DIR.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    server = Lab(root, base)
    t0 = time.perf_counter()
    server.start()
    print(f"\nJupyterLab up in {time.perf_counter() - t0:.1f} s at {server.url}")
    yield server
    server.stop()


# -- page helpers --------------------------------------------------------------------------------

# Installed before Run All: records, per code cell, when its prompt first shows an execution count
# (the cell finished), when an output first appears, and when a hierx tree row first appears in it.
INSTRUMENT = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets;
  const marks = window.__hx = { done: {}, output: {}, tree: {}, renderMs: {} };
  const WIDGET_OUTPUT = '.jp-OutputArea-executeResult .jp-OutputArea-output';  // the returned ExportResult
  const check = () => {
    const now = performance.now();
    cells.forEach((cell, i) => {
      if (cell.model.type !== 'code') return;
      const prompt = cell.node.querySelector('.jp-InputArea-prompt');
      if (marks.done[i] === undefined && prompt && /\\[\\d+\\]/.test(prompt.textContent)) marks.done[i] = now;
      // The widget's output (the magic's progress line comes before it, in an output of its own).
      if (marks.output[i] === undefined && cell.node.querySelector(WIDGET_OUTPUT)) marks.output[i] = now;
      if (marks.tree[i] === undefined && cell.node.querySelector('[data-testid="hierx-tree-row"]')) {
        marks.tree[i] = now;
        marks.renderMs[i] = parseFloat(cell.node.querySelector('[data-testid="hierx-root"]').getAttribute('data-render-ms'));
      }
    });
  };
  new MutationObserver(check).observe(panel.content.node, { subtree: true, childList: true, characterData: true });
  // Clear outputs and counts the copied notebook may hold, so the marks are this run's.
  cells.forEach((cell) => { if (cell.model.type === 'code') { cell.model.sharedModel.setOutputs([]); cell.model.executionCount = null; } });
}"""

NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const status = panel.sessionContext.session?.kernel?.status;
  const cells = panel.content.widgets.filter((c) => c.model.type === 'code');
  const errors = [];
  cells.forEach((c, i) => c.model.outputs.toJSON().forEach((o) => {
    if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
  }));
  return { status, pending: cells.filter((c) => c.model.executionCount == null).length, errors };
}"""

# Click a node inside `root` and time the update: the widget handles it synchronously (selection
# -> count, tree, table, both SVG charts); then the next frame is awaited (double rAF = painted).
TIMED_CLICK = """async (root, selector) => {
  const el = root.querySelector(selector);
  if (!el) throw new Error('not found: ' + selector);
  const t0 = performance.now();
  el.click();
  const sync = performance.now() - t0;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return { sync, painted: performance.now() - t0, renderMs: parseFloat(root.getAttribute('data-render-ms')) };
}"""

TABLE_AND_CHARTS = """(root) => {
  const cov = root.querySelector('[data-testid=hierx-coverage-chart]').hxData;
  const conf = root.querySelector('[data-testid=hierx-confidence-chart]').hxData;
  const rows = [...root.querySelectorAll('[data-testid=hierx-node-row]')];
  const sum = (names) => cov.categories.map((_, k) => names.reduce((a, n) => a + (cov.series[n] || [])[k], 0));
  return {
    count: parseInt(root.querySelector('[data-testid=hierx-selection-count]').textContent.replace(/\\D/g, ''), 10),
    rows: rows.length,
    rowModules: rows.map((r) => r.querySelectorAll('td')[2].textContent),
    pageInfo: root.querySelector('[data-testid=hierx-page-info]').textContent,
    covOps: cov.categories,
    covTagged: sum(['exact', 'pattern', 'inferred', 'unknown']), covUntagged: sum(['untagged']),
    bySource: Object.fromEntries(['exact', 'pattern', 'inferred'].map((n) => [n, cov.series[n].reduce((a, v) => a + v, 0)])),
    hist: conf.series.nodes, histNote: conf.note,
    crumbs: [...root.querySelectorAll('[data-testid=hierx-breadcrumbs] button')].map((b) => b.textContent),
  };
}"""


def open_notebook(browser, lab: Lab, name: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    workspace = Path(name).stem.replace("_", "-")
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab.token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.content "
                           "&& window.jupyterapp.shell.currentWidget.content.widgets.length > 0", timeout=60_000)
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
                           timeout=60_000)
    dismiss_dialogs(page)
    return page


def dismiss_dialogs(page) -> None:
    """Close JupyterLab first-run dialogs (kernel choice, news) if any appeared."""
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            return
        accept = dialog.locator(".jp-mod-accept")
        (accept.first if accept.count() else dialog.locator("button").first).click()
        page.wait_for_timeout(200)


def run_all(page, timeout_s: float) -> float:
    """Run > Run All Cells from the menu bar; wait until every code cell has run. Returns seconds."""
    page.evaluate(INSTRUMENT)
    t0 = time.perf_counter()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.monotonic() + timeout_s
    while True:
        dismiss_dialogs(page)
        state = page.evaluate(NOTEBOOK_STATE)
        assert not state["errors"], f"cells failed: {state['errors']}"
        if state["pending"] == 0 and state["status"] == "idle":
            return time.perf_counter() - t0
        assert time.monotonic() < deadline, f"notebook still running after {timeout_s:.0f} s: {state}"
        page.wait_for_timeout(250)


def cell_marks(page, cell_index: int) -> dict:
    """Timestamps for one code cell (index among all cells), relative figures in ms."""
    m = page.evaluate(f"""() => {{
      const i = {cell_index}, hx = window.__hx;
      return {{ done: hx.done[i], output: hx.output[i], tree: hx.tree[i], renderMs: hx.renderMs[i] }};
    }}""")
    assert m["tree"] is not None, f"no tree rendered in cell {cell_index}"
    return {"done_to_tree": m["tree"] - m["done"], "output_to_tree": m["tree"] - m["output"],
            "first_build_ms": m["renderMs"]}


def hierexport_cells(page) -> list[int]:
    return page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .map((c, i) => [c.model.type === 'code' && /^%hierexport/m.test(c.model.sharedModel.getSource()) && !/--no-widget/.test(c.model.sharedModel.getSource()), i])
        .filter(([yes]) => yes).map(([, i]) => i)""")


def widget_root(page, cell_index: int):
    root = page.locator(".jp-Notebook .jp-Cell").nth(cell_index).locator('[data-testid="hierx-root"]')
    root.wait_for(timeout=30_000)
    return root


def row(root, module: str):
    return root.locator(f'[data-testid="hierx-tree-row"][data-module="{module}"]')


def visible_modules(root) -> list[str]:
    return root.locator('[data-testid="hierx-tree-row"]').evaluate_all("rs => rs.map(r => r.dataset.module)")


def kernel_eval(page, code: str, timeout_ms: int = 30_000) -> str:
    """Run code in the notebook's kernel (not as a cell) and return its stdout."""
    return page.evaluate("""async ([code, timeout]) => {
      const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
      const future = kernel.requestExecute({ code, silent: false, store_history: false });
      let out = '';
      future.onIOPub = (msg) => {
        if (msg.header.msg_type === 'stream') out += msg.content.text;
        if (msg.header.msg_type === 'error') out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
      };
      await Promise.race([future.done, new Promise((_, rej) => setTimeout(() => rej(new Error('kernel timeout')), timeout))]);
      return out;
    }""", [code, timeout_ms])


def expected(result, module: str) -> dict:
    """What the explorer should show for `module`'s subtree, from the exported tables."""
    sub = result.nodes[subtree_mask(result.nodes["module"], module)]
    conf = sub["confidence"].astype(float)
    tagged = sub[sub["module"].notna()]
    return {"count": len(sub), "ops": set(sub["op_type"].astype(str)),
            "tagged": len(tagged), "with_conf": int(conf.notna().sum()),
            "all_exact": len(sub) > 0 and bool(((sub["source"].astype(str) == "exact") & (conf == 1.0) & sub["module"].notna()).all()),
            "by_source": {s: int((tagged["source"] == s).sum()) for s in ("exact", "pattern", "inferred")}}


def check_selection(root, result, module: str) -> dict:
    exp = expected(result, module)
    got = root.evaluate(TABLE_AND_CHARTS)
    assert got["count"] == exp["count"], (module, got["count"], exp["count"])
    assert got["rows"] == min(100, exp["count"])
    if module:
        assert all(m == module or m.startswith(module + ".") for m in got["rowModules"]), got["rowModules"][:5]
    if len(exp["ops"]) <= 30:
        assert set(got["covOps"]) == exp["ops"]
    assert sum(got["covTagged"]) + sum(got["covUntagged"]) == exp["count"]
    assert sum(got["covTagged"]) == exp["tagged"]
    assert got["bySource"] == exp["by_source"], (got["bySource"], exp["by_source"])
    if exp["all_exact"]:  # one full bar says less than the sentence
        assert got["hist"] is None and got["histNote"] == f"all {exp['count']:,} nodes exact (confidence 1.0)"
    else:
        assert sum(got["hist"]) == exp["with_conf"]
    return got


def report(title: str, figures: dict, targets: dict) -> None:
    """Print every figure; those with a target (ms) say whether they met it."""
    print(f"\n{title}")
    for k, v in figures.items():
        if not isinstance(v, (int, float)):
            print(f"  {k:58s} {v}")
            continue
        note = f"   target <= {targets[k]:.0f} ms: {'ok' if v <= targets[k] else 'OVER'}" if k in targets else ""
        print(f"  {k:58s} {v:9.1f} ms{note}")


def assert_targets(figures: dict, targets: dict, headroom: float) -> None:
    """The targets, with headroom for a loaded CI machine (the figures are printed either way)."""
    over = {k: round(figures[k], 1) for k, limit in targets.items() if figures[k] > limit * headroom}
    assert not over, f"over target x{headroom}: {over} (targets {targets})"


# -- tests -----------------------------------------------------------------------------------------

def test_quickstart_in_jupyterlab(lab, browser):
    page = open_notebook(browser, lab, "quickstart.ipynb")
    seconds = run_all(page, timeout_s=180)
    bert_cell, scorer_cell = hierexport_cells(page)
    result = hierx_nb.load(lab.out / "quickstart_bert.onnx")
    scored = hierx_nb.load(lab.out / "scorer.onnx")
    timings = {"run all cells (s)": f"{seconds:.1f} s"}
    marks = cell_marks(page, bert_cell)
    timings["cell finished -> tree rendered"] = marks["done_to_tree"]
    timings["widget output shown -> tree rendered"] = marks["output_to_tree"]
    timings["first build in JS (decode + tree + table + charts)"] = marks["first_build_ms"]

    root = widget_root(page, bert_cell)
    root.scroll_into_view_if_needed()
    assert root.locator(".hx-model").text_content() == "BertModel"
    # The header's "known" figure is the node table's known share (exact + pattern), as the engine says.
    known = 100 * result.nodes["source"].isin(["exact", "pattern"]).mean()
    assert abs(known - result.coverage_pct) < 1e-9
    assert root.get_by_test_id("hierx-coverage-pct").text_content() == f"{known:.1f}%"
    # The notebook set result.widget.selected from Python: the explorer followed (and revealed it).
    sel = check_selection(root, result, "encoder.layer.0.attention")
    assert sel["crumbs"][-1] == "attention"
    assert "encoder.layer.0.attention" in visible_modules(root)

    # Collapsed, the tree shows the model's top modules.
    root.get_by_test_id("hierx-collapse-all").click()
    shown = visible_modules(root)
    assert shown == ["", "embeddings", "encoder", "pooler"], shown

    # Expand encoder, encoder.layer (carets), then click encoder.layer.0: count, table, both charts follow.
    root.evaluate(TIMED_CLICK, '[data-module="encoder"] .hx-caret')
    t = root.evaluate(TIMED_CLICK, '[data-module="encoder.layer"] .hx-caret')
    timings["expand encoder.layer (caret click, sync)"] = t["sync"]
    assert row(root, "encoder.layer.0").count() == 1
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="encoder.layer.0"]')
    timings["click encoder.layer.0 -> table + charts updated (sync)"] = t["sync"]
    timings["click encoder.layer.0 -> next frame painted"] = t["painted"]
    timings["  widget's own data-render-ms for it"] = t["renderMs"]
    sel = check_selection(root, result, "encoder.layer.0")
    assert sel["crumbs"] == ["BertModel", "encoder", "layer", "0"]
    # ... and the selection reached Python.
    out = kernel_eval(page, "print(result.widget.selected, len(result.selection))")
    assert out.split() == ["encoder.layer.0", str(expected(result, "encoder.layer.0")["count"])], out

    # A real mouse click on another module too.
    row(root, "pooler").click()
    check_selection(root, result, "pooler")
    page.screenshot(path=str(ARTIFACTS / "lab_quickstart.png"), full_page=False)

    # Search filters the tree: matches and their ancestors only.
    names = result.modules["module"].astype(str)
    classes = result.modules["module_class"].astype(str)
    q = "intermediate"
    n_match = int((names.str.lower().str.contains(q) | classes.str.lower().str.contains(q)).sum())
    root.get_by_test_id("hierx-search").fill(q)
    root.locator(".hx-matches").filter(has_text=f"{n_match} module match").wait_for(timeout=5_000)
    shown = visible_modules(root)
    assert shown and all(s == "" or q in s or any(m.startswith(s + ".") and q in m for m in names) for s in shown), shown
    assert "pooler" not in shown and "embeddings" not in shown
    root.get_by_test_id("hierx-search").fill("")
    root.locator(".hx-matches").filter(has_text="match").wait_for(state="detached", timeout=5_000)
    assert "pooler" in visible_modules(root)

    # The module named with markup is literal text in the tree, table and breadcrumbs; no <b> created.
    evil = widget_root(page, scorer_cell)
    evil.scroll_into_view_if_needed()
    assert row(evil, "<b>evil</b>").locator(".hx-name").text_content() == "<b>evil</b>"
    row(evil, "<b>evil</b>").click()
    got = check_selection(evil, scored, "<b>evil</b>")
    assert got["rowModules"] == ["<b>evil</b>"] and got["crumbs"][-1] == "<b>evil</b>"
    assert page.locator(".jp-Notebook [data-testid=hierx-root] b").count() == 0
    # (the DataFrame of the next cell shows it escaped too)
    assert page.locator(".jp-Notebook .jp-OutputArea b", has_text="evil").count() == 0
    evil.screenshot(path=str(ARTIFACTS / "lab_quickstart_markup.png"))
    # the graph shows the selected module's level, named as text
    assert evil.locator('[data-testid="hierx-graph"] svg').get_attribute("aria-label") == "dataflow of <b>evil</b>"

    # The graph view (issue 17): the selection's dataflow, expand/collapse in place, double click to select,
    # node click -> table.
    graph = root.get_by_test_id("hierx-graph")
    root.scroll_into_view_if_needed()
    root.get_by_test_id("hierx-breadcrumbs").locator("button").first.click()
    boxes = lambda: sorted(graph.locator(".hx-g-module").evaluate_all("es => es.map(e => e.dataset.graphModule)"))  # noqa: E731
    assert boxes() == ["embeddings", "encoder", "pooler"]
    graph.locator('.hx-g-module[data-graph-module="encoder"]').click()
    graph.locator('.hx-g-cluster[data-graph-module="encoder"]').wait_for(timeout=5_000)
    assert "encoder.layer" in boxes()
    timings["graph: expand encoder in place"] = float(graph.get_attribute("data-toggle-ms"))
    graph.locator('.hx-g-cluster[data-graph-module="encoder"] .hx-g-title').click()
    graph.locator(".hx-g-cluster").wait_for(state="detached", timeout=5_000)
    graph.locator('.hx-g-module[data-graph-module="pooler"]').dblclick()
    root.locator('[data-testid="hierx-tree-row"][data-module="pooler"][aria-selected="true"]').wait_for(timeout=5_000)
    assert kernel_eval(page, "print(result.widget.selected)").strip() == "pooler"
    node = result.nodes[result.nodes["module"] == "pooler.dense"]["node"].iloc[0]
    graph.locator('.hx-g-module[data-graph-module="pooler.dense"]').click()
    graph.locator(f'.hx-g-op[data-graph-node="{node}"]').click()
    assert root.locator('[data-testid="hierx-node-row"].hx-node-on .hx-node-name').all_text_contents() == [node]
    page.screenshot(path=str(ARTIFACTS / "lab_graph_view.png"), full_page=False)

    # Downloads: the selection's node table as CSV, and the HTML report, which the kernel renders.
    with page.expect_download() as dl:
        root.get_by_test_id("hierx-download-nodes").click()
    rows = Path(dl.value.path()).read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == result.mapping("pooler")["node"].tolist()
    with page.expect_download(timeout=30_000) as dl:
        root.get_by_test_id("hierx-download-report").click()
    html = Path(dl.value.path()).read_text()
    assert html.startswith("<!doctype html>") and '"selected": "pooler"' in html and 'id="hierx-data"' in html

    # The chart hover bug: in JupyterLab's theme the hover shade was an opaque box drawn over the bar.
    # Now the bar stays on top of its hover area, and the shade is translucent.
    bar = root.locator('[data-testid="hierx-coverage-chart"] .hx-bar rect.hx-s-exact').first
    bar.hover()
    top = bar.evaluate("""(r) => { const b = r.getBoundingClientRect();
        const e = document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2);
        const hit = r.parentNode.querySelector('.hx-hit');
        return { same: e === r, shade: getComputedStyle(hit).fill }; }""")
    assert top["same"], top
    assert "rgba(" in top["shade"] or " / " in top["shade"], top  # an alpha channel: translucent

    assert page.errors == [], page.errors
    targets = {"cell finished -> tree rendered": 1000, "click encoder.layer.0 -> table + charts updated (sync)": 200,
               "graph: expand encoder in place": 200}
    report("quickstart (tiny BERT) in JupyterLab:", timings, targets)
    assert_targets(timings, targets, headroom=1.0)  # measured here: 350-450 ms and 40-50 ms
    page.close()


def test_bert_large_structure_in_jupyterlab(lab, browser):
    """A 24-layer BERT-shaped model (thousands of nodes): render and click-to-table times."""
    page = open_notebook(browser, lab, "bert_large_structure.ipynb")
    seconds = run_all(page, timeout_s=180)
    (cell,) = hierexport_cells(page)
    result = hierx_nb.load(lab.out / "bert_large_structure.onnx")
    timings = {"run all cells (s)": f"{seconds:.1f} s ({len(result.nodes):,} nodes, {len(result.modules):,} modules)"}
    marks = cell_marks(page, cell)
    timings["cell finished -> tree rendered"] = marks["done_to_tree"]
    timings["first build in JS (decode + tree + table + charts)"] = marks["first_build_ms"]

    root = widget_root(page, cell)
    root.scroll_into_view_if_needed()
    root.get_by_test_id("hierx-collapse-all").click()
    assert visible_modules(root) == ["", "embeddings", "encoder", "pooler"]
    root.evaluate(TIMED_CLICK, '[data-module="encoder"] .hx-caret')
    root.evaluate(TIMED_CLICK, '[data-module="encoder.layer"] .hx-caret')
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="encoder.layer.0"]')
    timings["click encoder.layer.0 -> table + charts updated (sync)"] = t["sync"]
    timings["click encoder.layer.0 -> next frame painted"] = t["painted"]
    check_selection(root, result, "encoder.layer.0")
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="encoder"]')
    timings[f"click encoder ({expected(result, 'encoder')['count']:,} nodes) -> updated (sync)"] = t["sync"]
    check_selection(root, result, "encoder")
    page.screenshot(path=str(ARTIFACTS / "lab_bert_large_structure.png"), full_page=False)

    assert page.errors == [], page.errors
    targets = {"cell finished -> tree rendered": 1000, "click encoder.layer.0 -> table + charts updated (sync)": 200}
    report("BERT-large-shaped structure (24 layers) in JupyterLab:", timings, targets)
    assert_targets(timings, targets, headroom=1.0)
    page.close()


def test_giant_structure_in_jupyterlab(lab, browser):
    page = open_notebook(browser, lab, "giant_structure.ipynb")
    seconds = run_all(page, timeout_s=240)
    (cell,) = hierexport_cells(page)
    result = hierx_nb.load(lab.out / "llama70b_structure.onnx")
    timings = {"run all cells (s)": f"{seconds:.1f} s ({GIANT_LAYERS} layers, "
                                     f"{len(result.nodes):,} nodes, {len(result.modules):,} modules)"}
    marks = cell_marks(page, cell)
    timings["cell finished -> tree rendered"] = marks["done_to_tree"]
    timings["widget output shown -> tree rendered"] = marks["output_to_tree"]
    timings["first build in JS (decode + tree + table + charts)"] = marks["first_build_ms"]

    root = widget_root(page, cell)
    root.scroll_into_view_if_needed()
    assert root.locator(".hx-model").text_content() == "LlamaForCausalLM"
    assert {"model", "lm_head", "model.layers"} <= set(visible_modules(root))
    check_selection(root, result, "")

    t = root.evaluate(TIMED_CLICK, '[data-module="model.layers"] .hx-caret')
    timings["expand model.layers (caret click, sync)"] = t["sync"]
    timings["  -> next frame painted"] = t["painted"]
    t = root.evaluate(TIMED_CLICK, '[data-module="model.layers.0"] .hx-caret')
    timings["expand model.layers.0 (caret click, sync)"] = t["sync"]
    timings["  -> next frame painted "] = t["painted"]
    rows = root.locator('[data-testid="hierx-tree-row"]').count()
    assert rows < 80, f"{rows} tree rows in the DOM: the tree is not virtualized"  # 80+ visible modules
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="model.layers.0.mlp"]')
    timings["select model.layers.0.mlp -> table + charts updated (sync)"] = t["sync"]
    timings["  -> next frame painted  "] = t["painted"]
    check_selection(root, result, "model.layers.0.mlp")
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="model.layers.0.self_attn"]')
    timings["select model.layers.0.self_attn -> updated (sync)"] = t["sync"]
    check_selection(root, result, "model.layers.0.self_attn")
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="model"]')
    timings[f"select model ({expected(result, 'model')['count']:,} nodes) -> updated (sync)"] = t["sync"]
    check_selection(root, result, "model")
    root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="model.layers.0.mlp"]')
    page.screenshot(path=str(ARTIFACTS / "lab_giant_structure.png"), full_page=False)

    assert page.errors == [], page.errors
    targets = {"cell finished -> tree rendered": 1000, "expand model.layers.0 (caret click, sync)": 100,
               "select model.layers.0.mlp -> table + charts updated (sync)": 100}
    report(f"LLaMA-70B-shaped structure ({GIANT_LAYERS} layers) in JupyterLab:", timings, targets)
    # Measured here: 350-850 ms, ~4 ms and 45-60 ms; the headroom keeps a busy CI runner from failing it.
    assert_targets(timings, targets, headroom=1.5)
    page.close()


@pytest.fixture(scope="module", autouse=True)
def _artifacts():
    ARTIFACTS.mkdir(exist_ok=True)


def code_notebook(sources: list[str]):
    """An nbformat notebook of these code cells, for the python3 kernel."""
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in sources],
                                    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})


def _five_explorers_notebook():
    """Five small CNNs, each exported with %hierexport (its explorer is the cell's output)."""
    return code_notebook(["%load_ext hierx_nb",
                          "import os\nfrom pathlib import Path\nimport torch\n"
                          "OUT = Path(os.environ['HIERX_OUT'])\ntorch.manual_seed(0)",
                          *(f"model{i} = torch.nn.Sequential(*(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), "
                            f"torch.nn.ReLU()) for _ in range({i + 1}))).eval()\n"
                            f"%hierexport model{i} (torch.randn(1, 3, 8, 8),) -o {{OUT}}/five_{i}.onnx" for i in range(5))])


def test_saved_notebook_is_light_and_reopens(lab, browser, monkeypatch):
    """A notebook with five explorers, executed and saved with its widget state, weighs at most
    1.5 MB; reopened in JupyterLab (nothing re-run), every explorer renders from the saved state."""
    import nbclient
    import nbformat
    from nbformat.sign import NotebookNotary

    nb = _five_explorers_notebook()
    monkeypatch.setenv("JUPYTER_PATH", str(lab.base / "share"))
    monkeypatch.setenv("HIERX_OUT", str(lab.out))
    monkeypatch.setenv("IPYTHONDIR", str(lab.base / "ipython"))
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, startup_timeout=120,
                            store_widget_state=True).execute()
    path = lab.root / "five_explorers.ipynb"
    # Saved by its author, so trusted (JupyterLab renders widgets of trusted notebooks only).
    NotebookNotary(data_dir=str(lab.base / "data")).sign(nb)
    nbformat.write(nb, path)
    size = path.stat().st_size
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    explorers = {k: v for k, v in state.items() if v["state"].get("_anywidget_id", "").endswith("HierxExplorer")}
    assert len(explorers) == 5
    per = sorted(len(json.dumps(v)) for v in explorers.values())
    print(f"\nsaved five-explorer notebook: {size / 1e6:.3f} MB; bytes per explorer in the widget state: "
          f"{per} (of which _esm {len(next(iter(explorers.values()))['state']['_esm']):,}, "
          f"_css {len(next(iter(explorers.values()))['state']['_css']):,})")
    assert size <= 1_500_000

    page = open_notebook(browser, lab, path.name)
    roots = page.locator('.jp-Notebook [data-testid="hierx-root"]')
    deadline = time.monotonic() + 60
    while roots.count() < 5 or page.locator('.jp-Notebook [data-testid="hierx-tree-row"][data-module=""]').count() < 5:
        assert time.monotonic() < deadline, f"{roots.count()} explorers rendered from the saved state, expected 5"
        page.wait_for_timeout(250)
    for i in range(5):  # each shows its own model: model i has i + 1 blocks, in the tree and in the graph
        root = roots.nth(i)
        root.get_by_test_id("hierx-expand-all").click()
        blocks = [m for m in visible_modules(root) if m and "." not in m]
        assert blocks == [str(k) for k in range(i + 1)], blocks
        graph = root.get_by_test_id("hierx-graph")
        boxes = sorted(graph.locator(".hx-g-module").evaluate_all("es => es.map(e => e.dataset.graphModule)"))
        assert boxes == [str(k) for k in range(i + 1)], boxes
    # The graph of a CNN in JupyterLab, from the saved state: expand a block in place, collapse it,
    # double click to select, a node click marks the table.
    root = roots.nth(4)
    root.scroll_into_view_if_needed()
    graph = root.get_by_test_id("hierx-graph")
    graph.locator('.hx-g-module[data-graph-module="2"]').click()
    graph.locator('.hx-g-cluster[data-graph-module="2"]').wait_for(timeout=5_000)
    assert graph.locator('.hx-g-module[data-graph-module="2.0"]').count() == 1  # the block's Conv2d
    graph.locator('.hx-g-cluster[data-graph-module="2"] .hx-g-title').click()
    graph.locator(".hx-g-cluster").wait_for(state="detached", timeout=5_000)
    graph.locator('.hx-g-module[data-graph-module="3"]').dblclick()
    root.locator('[data-testid="hierx-tree-row"][data-module="3"][aria-selected="true"]').wait_for(timeout=5_000)
    graph.locator('.hx-g-module[data-graph-module="3.0"]').click()
    conv = graph.locator(".hx-g-op").first
    name = conv.get_attribute("data-graph-node")
    conv.click()
    assert root.locator('[data-testid="hierx-node-row"].hx-node-on .hx-node-name').all_text_contents() == [name]
    page.screenshot(path=str(ARTIFACTS / "lab_cnn_graph.png"), full_page=False)
    assert page.get_by_test_id("hierx-error").count() == 0
    page.screenshot(path=str(ARTIFACTS / "lab_five_explorers_reopened.png"), full_page=False)
    assert page.errors == [], page.errors
    page.close()


LATENCY_NOTEBOOK = [
    "%load_ext hierx_nb",
    "import os\nfrom pathlib import Path\nimport torch\nfrom transformers import BertConfig, BertModel\n"
    "OUT = Path(os.environ['HIERX_OUT'])\ntorch.manual_seed(0)\n"
    "config = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,\n"
    "                    intermediate_size=128, max_position_embeddings=128)\n"
    "model = BertModel(config).eval()",
    "%hierexport model -o {OUT}/latency_bert.onnx -r result",
    "latency = result.profile(runs=5, warmup=1)  # the explorer above follows",
]


def test_latency_metric_in_jupyterlab(lab, browser):
    """Issue #10: profile() after the export; switch the explorer to latency: the tree shows times,
    a click updates the table and the charts (compared with result.latency from the kernel)."""
    import nbformat

    nbformat.write(code_notebook(LATENCY_NOTEBOOK), lab.root / "latency.ipynb")
    page = open_notebook(browser, lab, "latency.ipynb")
    run_all(page, timeout_s=240)
    (cell,) = hierexport_cells(page)
    root = widget_root(page, cell)
    root.scroll_into_view_if_needed()
    metric = root.get_by_test_id("hierx-metric")
    assert "latency (ms)" in metric.locator("option").all_text_contents()  # profile() reached the view
    lat = json.loads(kernel_eval(page, "print(latency.assign(module=latency.module.astype(str))"
                                       "[['module', 'self_ms', 'total_ms', 'share']].to_json(orient='records'))"))
    by = {r["module"]: r for r in lat}
    by_op = json.loads(kernel_eval(page, "import json; print(json.dumps(latency.attrs['by_op_type']))"))

    t0 = time.perf_counter()
    metric.select_option("latency")
    switch_ms = (time.perf_counter() - t0) * 1000
    assert root.locator(".hx-tree-head span").all_text_contents()[2:] == ["self ms", "total ms", "share"]
    enc = row(root, "encoder").locator(".hx-num").all_text_contents()
    share = by["encoder"]["share"]
    assert enc[2] == f"{share * 100:.1f}%", (enc, by["encoder"])
    assert float(enc[1]) == pytest.approx(by["encoder"]["total_ms"], rel=0.01, abs=0.01)
    charts = root.evaluate("""(r) => [r.querySelector('[data-testid=hierx-coverage-chart]').hxData,
                                      r.querySelector('[data-testid=hierx-confidence-chart]').hxData]""")
    # The op-type chart follows the selection: per-node times (profile's by_node) summed by the nodes' op types.
    by_node = json.loads(kernel_eval(page, "import json; print(json.dumps(latency.attrs['by_node']))"))
    exported = hierx_nb.load(lab.out / "latency_bert.onnx").nodes
    per_op: dict = {}
    for name, op in zip(exported["node"], exported["op_type"].astype(str)):
        if name in by_node:
            per_op[op] = per_op.get(op, 0.0) + by_node[name]
    assert sum(per_op.values()) == pytest.approx(sum(by_op.values()), rel=0.02)  # the same kernel time, by node
    got = dict(zip(charts[0]["categories"], charts[0]["series"]["time"]))
    assert got == pytest.approx(per_op), (got, per_op)
    # Metric colours in the graph: module boxes filled by their time.
    assert root.locator("[data-testid=hierx-graph] .hx-g-module rect[style*='color-mix']").count() >= 2
    subs = root.locator("[data-testid=hierx-graph] .hx-g-module .hx-g-sub").all_text_contents()
    assert any(x.endswith(" ms") for x in subs), subs

    row(root, "encoder").click()  # (depth 1: already open)
    root.evaluate(TIMED_CLICK, '[data-module="encoder.layer"] .hx-caret')
    t = root.evaluate(TIMED_CLICK, '[data-testid="hierx-tree-row"][data-module="encoder.layer.0"]')
    check_selection_counts = expected(hierx_nb.load(lab.out / "latency_bert.onnx"), "encoder.layer.0")["count"]
    assert int(root.get_by_test_id("hierx-selection-count").text_content()) == check_selection_counts
    assert root.get_by_test_id("hierx-node-row").count() == min(100, check_selection_counts)
    by_module = root.evaluate("(r) => r.querySelector('[data-testid=hierx-confidence-chart]').hxData")
    children = {n: by[n]["total_ms"] for n in by if n.startswith("encoder.layer.0.") and n.count(".") == 3
                and by[n]["total_ms"] > 0}
    own = by.get("encoder.layer.0", {}).get("self_ms") or 0
    want = sorted([(n.rsplit(".", 1)[1], v) for n, v in children.items()] + ([("(own nodes)", own)] if own > 0 else []),
                  key=lambda kv: -kv[1])
    assert by_module["categories"] == [k for k, _ in want], (by_module, want)
    assert by_module["series"]["time"] == pytest.approx([v for _, v in want])
    # The node table's ms column: each row's time is the profile's time for that node.
    ms_cells = root.locator('[data-testid="hierx-node-row"] td.hx-ms').all_text_contents()
    names_shown = root.locator('[data-testid="hierx-node-row"] .hx-node-name').all_text_contents()
    assert len(ms_cells) == len(names_shown) > 0
    for name, cell in zip(names_shown, ms_cells):
        assert cell == "–" if name not in by_node else float(cell) == pytest.approx(by_node[name], rel=0.06, abs=6e-4), (name, cell)
    page.screenshot(path=str(ARTIFACTS / "lab_latency.png"), full_page=False)
    report("latency metric (tiny BERT, profile(runs=5)) in JupyterLab:",
           {"switch to latency (select, round trip)": switch_ms,
            "click encoder.layer.0 -> table + charts (sync)": t["sync"]},
           {"click encoder.layer.0 -> table + charts (sync)": 100})
    assert page.errors == [], page.errors
    page.close()


COMPARE_NOTEBOOK = [
    "%load_ext hierx_nb",
    "import os\nfrom pathlib import Path\nimport torch\nfrom torch import nn\n"
    "OUT = Path(os.environ['HIERX_OUT'])\ntorch.manual_seed(0)\n"
    "mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()\n"
    "x = torch.randn(8, 16)",
    "%hierexport mlp x -o {OUT}/compare_a.onnx -r result",
    # The planted fault: b is the same export with the middle Linear's weight changed by hand.
    "import onnx\nfrom onnx import numpy_helper\n"
    "b = onnx.load(OUT / 'compare_a.onnx')\n"
    "(w,) = [t for t in b.graph.initializer if t.name == '2.weight']\n"
    "changed = numpy_helper.to_array(w).copy()\nchanged[:, :8] *= -3.0\n"
    "w.CopyFrom(numpy_helper.from_array(changed, w.name))\n"
    "onnx.save(b, OUT / 'compare_b.onnx')",
]
COMPARE_CELL = "comparison = result.compare(OUT / 'compare_b.onnx', runs=5, warmup=1)  # the explorer above follows"


def _fmt_ms(ms: float) -> str:  # js/src/data.js fmtMs
    if ms != ms:
        return "–"
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 0.1 else f"{ms:.3f}"


def test_compare_metric_in_jupyterlab(lab, browser, open_report):
    """Issue #16: an explorer on screen, then result.compare(b) in a later cell updates it: the
    selector offers compare, the tree shows ms a / ms b / b/a / own SQNR (compared with
    result.comparison from the kernel), the charts time and error by module, and the module whose
    weight was changed by hand is named first divergent and marked in the tree and the graph."""
    import nbformat

    nbformat.write(code_notebook(COMPARE_NOTEBOOK), lab.root / "compare.ipynb")
    page = open_notebook(browser, lab, "compare.ipynb")
    run_all(page, timeout_s=180)
    (cell,) = hierexport_cells(page)
    root = widget_root(page, cell)
    metric = root.get_by_test_id("hierx-metric")
    before = metric.locator("option[value=compare]")
    assert before.text_content() == "compare — run result.compare(other)" and before.is_disabled()

    # A later cell, added and run like a user would, with the explorer still on screen.
    page.evaluate("""async (code) => {
      const app = window.jupyterapp, panel = app.shell.currentWidget;
      panel.content.activeCellIndex = panel.content.widgets.length - 1;
      await app.commands.execute('notebook:insert-cell-below');
      panel.content.activeCell.model.sharedModel.setSource(code);
      await app.commands.execute('notebook:run-cell');
    }""", COMPARE_CELL)
    metric.locator("option[value=compare]:not([disabled])").wait_for(state="attached", timeout=120_000)
    assert metric.locator("option[value=compare]").text_content() == "compare (own SQNR dB)"
    cols = ["ms_a", "ms_b", "time_ratio", "own_sqnr_db"]
    table = {m: dict(zip(cols, v)) for m, *v in json.loads(kernel_eval(page, (  # json.dumps keeps NaN and Infinity
        f"import json; print(json.dumps([[str(r.module), *(float(r[c]) for c in {cols!r})] for _, r in comparison.iterrows()]))")))}
    first = kernel_eval(page, "print(comparison.attrs['first_divergent'])").strip()
    assert first == "2", (first, table)  # the Linear whose weight was changed, named by the kernel's table

    metric.select_option("compare")
    assert root.locator(".hx-tree-head span").all_text_contents()[2:] == ["ms a", "ms b", "b/a", "own dB"]
    for module in ("", "0", "2", "4"):
        want = table[module]
        cells = row(root, module).locator(".hx-num").all_text_contents()
        own = want["own_sqnr_db"]
        ratio = want["time_ratio"]
        assert cells[:3] == [_fmt_ms(want["ms_a"]), _fmt_ms(want["ms_b"]), "–" if ratio != ratio else f"{ratio:.2f}×"], \
            (module, cells, want)
        assert cells[3] == ("–" if own != own else "∞" if own == float("inf") else f"{own:.1f}"), (module, cells, want)
    assert table["2"]["own_sqnr_db"] < 20 and table["0"]["own_sqnr_db"] > 60, table
    assert "hx-bad" in row(root, "2").locator(".hx-num").nth(3).get_attribute("class")
    assert "hx-bad" not in row(root, "0").locator(".hx-num").nth(3).get_attribute("class")
    assert "first module whose own error exceeds the SQNR threshold (compare): 2" in \
        root.get_by_test_id("hierx-warnings").text_content()
    # The graph: the divergent Linear at full strength, its own SQNR as the box's subtitle.
    graph = root.get_by_test_id("hierx-graph")
    assert graph.locator(".hx-g-module[data-graph-module='2'] rect[style*='color-mix']").count() >= 1
    sub = graph.locator(".hx-g-module[data-graph-module='2'] .hx-g-sub").all_text_contents()
    assert sub and sub[-1].endswith(f"own {table['2']['own_sqnr_db']:.1f} dB"), sub
    charts = root.evaluate("""(r) => [r.querySelector('[data-testid=hierx-coverage-chart]').hxData,
                                      r.querySelector('[data-testid=hierx-confidence-chart]').hxData]""")
    time_chart, error_chart = charts
    # Time by module, a and b side by side: the kernel's ms_a / ms_b of each child with time in either.
    timed = [m for m in ("0", "1", "2", "3", "4") if max(table[m]["ms_a"], table[m]["ms_b"]) > 0]
    assert sorted(time_chart["categories"]) == sorted(timed), (time_chart, timed)
    for k, m in enumerate(time_chart["categories"]):
        assert time_chart["series"]["a"][k] == pytest.approx(table[m]["ms_a"]), (m, time_chart)
        assert time_chart["series"]["b"][k] == pytest.approx(table[m]["ms_b"]), (m, time_chart)
    assert error_chart["categories"][0] == "2", error_chart  # the most error added: the planted fault
    page.screenshot(path=str(ARTIFACTS / "lab_compare.png"), full_page=False)
    assert page.errors == [], page.errors

    # The same compare view in the offline report the kernel writes.
    assert kernel_eval(page, "result.to_html(OUT / 'compare_report.html')") == ""
    page.close()
    offline = open_report(name="compare_report", html=(lab.out / "compare_report.html").read_text(encoding="utf-8"))
    offline.get_by_test_id("hierx-metric").select_option("compare")
    for module in ("0", "2"):
        cells = row(offline, module).locator(".hx-num").all_text_contents()
        assert cells[3] == ("∞" if table[module]["own_sqnr_db"] == float("inf") else f"{table[module]['own_sqnr_db']:.1f}"), cells
    assert "hx-bad" in row(offline, "2").locator(".hx-num").nth(3).get_attribute("class")
    assert "first module whose own error exceeds the SQNR threshold (compare): 2" in \
        offline.get_by_test_id("hierx-warnings").text_content()
    offline.screenshot(path=str(ARTIFACTS / "report_compare.png"), full_page=False)
    assert offline.errors == [], offline.errors
