import os
import sys
import tempfile
import time
from pathlib import Path

# tests/zoo.py and the helper model modules are imported as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Modules whose tests each take more than about 20 s (kernels running notebooks, a wheel built in a
# fresh venv, MoE models exported several times): marked slow, so `-m "not slow"` is a quick pass.
SLOW_MODULES = {"test_notebooks.py", "test_wheel.py", "test_moe.py", "test_browser.py", "test_frontends.py"}


def pytest_configure(config):
    # Never the user's real failure cache: one fresh folder for this run (subprocesses and kernels inherit it).
    os.environ["HIERX_CACHE_DIR"] = tempfile.mkdtemp(prefix="hierx-test-cache-")
    os.environ.pop("HIERX_NO_CACHE", None)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    from playwright import sync_api

    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Chromium at /usr/bin/chromium: run scripts/test.sh, "
                    "which installs it (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path_factory, monkeypatch):
    """Every test starts with an empty failure cache (in tmp_path) and nothing remembered by this process:
    results never depend on which tests ran before."""
    from hierx_nb import memory

    folder = tmp_path_factory.mktemp("cache") / "hierx"  # not in tmp_path: tests list what they wrote there
    monkeypatch.setenv("HIERX_CACHE_DIR", str(folder))
    monkeypatch.setattr(memory, "_MEMORY", None)
    return folder


@pytest.fixture
def open_report(browser, tmp_path):
    """Opens ``result.to_html`` (or ``html``) from disk in an offline Chromium context that records
    every request, dialog and page error; asserts the page fetched nothing but itself."""
    contexts = []

    def _open(result=None, name="report", html=None, expect_error=False):
        path = tmp_path / f"{name}.html"
        if html is None:
            result.to_html(path)
        else:
            path.write_text(html, encoding="utf-8")
        ctx = browser.new_context(offline=True, viewport={"width": 1280, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        page.requests = []
        page.on("request", lambda req: page.requests.append(req.url))
        page.dialogs = []
        page.on("dialog", lambda dlg: (page.dialogs.append(dlg.message), dlg.dismiss()))
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(path.as_uri())
        wait_for(page, "() => window.hierx && window.hierx.firstRenderMs !== undefined", timeout_s=20)
        assert page.requests == [path.as_uri()], page.requests  # nothing but the file itself
        if not expect_error:
            assert page.get_by_test_id("hierx-error").count() == 0, page.get_by_test_id("hierx-error").text_content()
        return page

    yield _open
    for c in contexts:
        c.close()


def wait_for(page, predicate: str, timeout_s: float = 5) -> None:
    """Poll a JS predicate (the report's CSP forbids eval, which page.wait_for_function needs)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(30)
