import sys
from pathlib import Path

# tests/zoo.py and the helper model modules are imported as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))

import pytest

CHROMIUM = Path("/usr/bin/chromium")


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
