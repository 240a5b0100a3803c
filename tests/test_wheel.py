"""The wheel always carries its front end: built by the hatch-jupyter-builder hook, installed into a
fresh venv without npm, where %hierexport shows the explorer and `hierx report` writes a page.

The source tree is copied without the built bundle, so the hook must run `npm run build` (js/'s
node_modules is linked in when present, else the hook runs `npm install`). The fresh venv gets the
wheel with --no-deps; the heavy dependencies (torch, onnx, IPython...) come from this interpreter's
site-packages through a .pth path line, which does not process the .pth files in that folder, so
the editable install of the source tree is not picked up: hierx_nb must come from the wheel.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ["hierx_nb/notebook/static/widget.js", "hierx_nb/notebook/static/widget.css",
          "hierx_nb/notebook/static/report.js"]


def _source_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())
    assert not (dest / STATIC[0]).exists()  # the bundle is not in git: the hook has to build it
    if (ROOT / "js" / "node_modules").is_dir():
        (dest / "js" / "node_modules").symlink_to((ROOT / "js" / "node_modules").resolve())
    return dest


def test_wheel_builds_front_end_and_installs_without_npm(tmp_path):
    if shutil.which("npm") is None:
        pytest.fail("building the wheel needs npm (Node.js 18+): run scripts/setup.sh")
    src = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    # No build isolation: hatchling and hatch-jupyter-builder come from the test extra (no download).
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("hierx_nb-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert set(STATIC) <= names, sorted(n for n in names if "static" in n)
        assert len(z.read(STATIC[0])) > 10_000 and b"export" in z.read(STATIC[0])

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_heavy_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-3000:]

    script = textwrap.dedent(f"""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        import hierx_nb, hierx_nb.notebook.widget as w
        assert hierx_nb.__file__.startswith({str(site)!r}), hierx_nb.__file__
        sh = InteractiveShell.instance()
        for cell in ["%load_ext hierx_nb",
                     "import torch; m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU()).eval()",
                     "%hierexport m (torch.randn(1, 4),) -o {tmp_path / 'm.onnx'} -r result"]:
            r = sh.run_cell(cell)
            assert r.success, (cell, r.error_in_exec or r.error_before_exec)
        ex = sh.user_ns["result"].widget
        assert ex._esm == w.ESM_PATH.read_text() and len(ex._esm) > 10_000
        assert ex.tree["n"] == 3 and "0" in ex.tree["names"]
        print("OK", hierx_nb.__file__)
    """)
    # PATH holds the venv only: nothing can reach npm or node.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(env_dir / "bin")
    run = subprocess.run([py, "-c", script], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0 and "OK" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.split("OK ", 1)[1].strip().startswith(str(site))
    rep = subprocess.run([env_dir / "bin" / "hierx", "report", tmp_path / "m.onnx"], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "m.html").stat().st_size > 20_000
