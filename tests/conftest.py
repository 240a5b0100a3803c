import os
import sys
import tempfile
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
