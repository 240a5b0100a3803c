"""Execute every notebook in notebooks/ top to bottom with nbclient: no cell may fail.

The kernel is this interpreter (the venv's python + ipykernel), pinned through a kernelspec in a
temporary JUPYTER_PATH, so a ``python3`` kernelspec elsewhere on the machine is never used.
Files the notebooks write go to a temporary folder (``HIERX_OUT``); the IPython profile too.
The giant-structure notebook runs at its full 80 layers (about 35 s here).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "hierx-test-python"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# Full size unless the caller asks otherwise (e.g. HIERX_GIANT_LAYERS=8 for a quick local run).
GIANT_LAYERS = os.environ.get("HIERX_GIANT_LAYERS", "80")
# DeepSeek-V3's 61 layers take minutes: 5 (3 dense, 2 MoE) show the same structure unless asked otherwise.
MOE_LAYERS = os.environ.get("HIERX_MOE_LAYERS", "5")


def write_kernelspec(share: Path, name: str = KERNEL_NAME) -> Path:
    """A kernelspec under ``share/kernels/name`` that starts ipykernel with this interpreter."""
    spec = share / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({Path(sys.prefix).name})",
        "language": "python",
        "metadata": {"debugger": False},
    }))
    return spec


@pytest.fixture(scope="module")
def kernel_share(tmp_path_factory) -> Path:
    share = tmp_path_factory.mktemp("jupyter-share")
    write_kernelspec(share)
    return share


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "tour.ipynb", "strategies.ipynb", "giant_structure.ipynb", "moe_structure.ipynb"} <= names


def _errors(nb) -> list[str]:
    """Error outputs and tracebacks printed to stderr, as readable strings."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr" and "Traceback" in out.get("text", ""):
                found.append(f"cell {i} stderr:\n{out['text'][-2000:]}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_share: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "out"
    # The kernel inherits this environment.
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(kernel_share), os.environ.get("JUPYTER_PATH")])))
    monkeypatch.setenv("HIERX_OUT", str(out))
    monkeypatch.setenv("HIERX_GIANT_LAYERS", GIANT_LAYERS)
    monkeypatch.setenv("HIERX_MOE_LAYERS", MOE_LAYERS)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugpy's frozen-modules note

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300, startup_timeout=120,
                                     allow_errors=True, resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    print(f"\n{path.name}: executed in {seconds:.1f} s" + (f" ({GIANT_LAYERS} layers)" if "giant" in path.stem else ""))

    errors = _errors(nb)
    assert not errors, f"{path.name} failed:\n" + "\n".join(errors)

    # Every %hierexport without --no-widget displays the explorer (a widget view, not only text).
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        shows_widget = any(line.strip().startswith("%hierexport") and "--no-widget" not in line
                           and not line.rstrip().endswith(";") for line in cell.source.splitlines()[-1:])
        if shows_widget:
            mimes = {m for o in cell.get("outputs", []) for m in o.get("data", {})}
            assert WIDGET_MIME in mimes, f"{path.name} cell {i}: no widget displayed (outputs: {sorted(mimes)})"

    # Nothing lands next to the notebooks: outputs go to HIERX_OUT.
    assert out.is_dir() and any(out.iterdir()), f"{path.name} wrote nothing to HIERX_OUT"
    stray = [p.name for p in NOTEBOOK_DIR.iterdir() if p.suffix in {".onnx", ".json", ".data"}]
    assert not stray, f"{path.name} wrote files next to the notebooks: {stray}"
