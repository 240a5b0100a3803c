"""The explorer in the other notebook front ends, in headless Chromium: Notebook 7 and marimo.

In each: the explorer renders, a click on a tree row updates the count and the node table (and
reaches Python), and a module named with markup stays literal text. JupyterLab is covered by
test_browser.py, whose local-server helper (``Lab``) also runs Notebook 7 here.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from test_browser import ARTIFACTS, Lab, _free_port, dismiss_dialogs, kernel_eval

ROOT = Path(__file__).resolve().parent.parent
EVIL = "<b>evil</b>"
MARKUP_MODEL = '''import torch
class Scorer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32))
        self.add_module("<b>evil</b>", torch.nn.Linear(32, 4))
    def forward(self, x):
        return getattr(self, "<b>evil</b>")(self.body(x)).softmax(-1)
torch.manual_seed(0)
model = Scorer().eval()'''

pytestmark = pytest.mark.browser


def _wait(page, what: str, predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        page.wait_for_timeout(250)


def _check_explorer(page, root) -> None:
    """Render, click, markup: the same checks in every front end."""
    rows = root.locator('[data-testid="hierx-tree-row"]')
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.module)") == ["", "body", "body.0", "body.1", "body.2", EVIL]
    count = lambda: int(root.get_by_test_id("hierx-selection-count").text_content())  # noqa: E731
    chart_total = lambda: sum(sum(v) for v in root.get_by_test_id("hierx-coverage-chart").evaluate(  # noqa: E731
        "e => Object.values(e.hxData.series)"))
    everything = count()
    assert everything >= 4 and chart_total() == everything
    name = root.locator(f'[data-testid="hierx-tree-row"][data-module="{EVIL}"] .hx-name')
    assert name.text_content() == EVIL
    name.click()
    _wait(page, "the count to follow the click", lambda: count() < everything, 10)
    modules = [r.locator("td").nth(2).text_content() for r in root.get_by_test_id("hierx-node-row").all()]
    assert modules == [EVIL] * count() and count() >= 1, modules
    assert chart_total() == count()
    assert root.get_by_test_id("hierx-breadcrumbs").locator("button").last.text_content() == EVIL
    assert root.locator("b").count() == 0  # the markup never became an element


def test_notebook7(browser, tmp_path):
    root_dir = tmp_path / "notebooks"
    root_dir.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext hierx_nb"),
        nbformat.v4.new_code_cell(MARKUP_MODEL),
        nbformat.v4.new_code_cell("%hierexport model (torch.randn(2, 16),) -r result"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, root_dir / "nb7.ipynb")
    server = Lab(root_dir, tmp_path, app="notebook")
    server.start()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"{server.url}/notebooks/nb7.ipynb?token={server.token}")
        ready = ("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                 " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel?.status === 'idle'")
        _wait(page, "Notebook 7 and its kernel", lambda: page.evaluate(ready), 90)
        assert "/notebooks/" in page.url and page.locator(".jp-NotebookPanel").count() == 1
        # Notebook 7.6 itself throws "reading 'schema'" while loading its settings (an empty notebook
        # does too); errors are counted from here on, where the explorer runs.
        page.errors.clear()
        dismiss_dialogs(page)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        explorer = page.locator('.jp-Notebook [data-testid="hierx-root"]')
        _wait(page, "the explorer", lambda: explorer.locator('[data-testid="hierx-tree-row"]').count() > 0, 120)
        _check_explorer(page, explorer)
        out = kernel_eval(page, "print(result.widget.selected, len(result.selection), len(result.mapping('<b>evil</b>')))")
        selected, n, expected = out.split()
        assert selected == EVIL and n == expected != "0", out
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook7.png"), full_page=False)
        assert page.errors == [], page.errors
        page.close()
    finally:
        server.stop()


def test_marimo(browser, tmp_path):
    """notebooks/explorer_marimo.py served by `marimo run`; the cell below the explorer shows the selection."""
    port = _free_port()
    env = dict(os.environ, HIERX_OUT=str(tmp_path / "out"), PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "marimo.log"
    with open(log, "w") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "marimo", "run", str(ROOT / "notebooks" / "explorer_marimo.py"),
                                 "--headless", "--host", "127.0.0.1", "--port", str(port), "--no-token"],
                                env=env, cwd=tmp_path, stdout=logf, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"marimo exited:\n{log.read_text()[-3000:]}"
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"marimo did not start in 60 s:\n{log.read_text()[-3000:]}"
                    time.sleep(0.3)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            explorer = page.locator('[data-testid="hierx-root"]')
            _wait(page, "the explorer", lambda: explorer.locator('[data-testid="hierx-tree-row"]').count() > 0, 150)
            _check_explorer(page, explorer)
            # the selection reached Python: the next cell (result.selection) re-ran with the one node
            _wait(page, "result.selection to show the selected module's node",
                  lambda: page.locator("td", has_text=EVIL).count() > 0 or page.get_by_text(EVIL, exact=True).count() > 1, 60)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "marimo.png"), full_page=True)
            assert page.errors == [], page.errors
            page.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
