"""Safe output: check the target before any work, write into a temporary folder beside it, move into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import onnx_ir as ir

from .errors import InputError


def check_output(path: str | os.PathLike) -> Path:
    """The output path, resolved; ``InputError`` if its folder is missing or unwritable or it is a folder."""
    out = Path(path).expanduser().resolve()
    if out.is_dir():
        raise InputError(f"output {str(path)!r} is a folder: give a file name such as {str(Path(path) / 'model.onnx')!r}")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{str(folder)!r} is a file, not a folder: choose another -o path")
    if not folder.is_dir():
        raise InputError(f"output folder {str(folder)!r} does not exist: create it first or choose another -o path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(folder)!r} is not writable: choose another -o path")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(f"output file {str(out)!r} exists and is read-only: remove it or choose another -o path")
    return out


@contextlib.contextmanager
def staging(folder: Path):
    """A temporary folder inside ``folder`` (same filesystem, so moves are atomic); always removed."""
    tmp = Path(tempfile.mkdtemp(prefix=".hierx-", dir=folder))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: list[tuple[Path, Path]]) -> None:
    """Move each staged file onto its target; targets not in the list are never touched."""
    for src, dst in staged:
        os.replace(src, dst)


def weight_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def stage_model(model: ir.Model, tmp: Path, out_path: Path, external_data_threshold: int) -> list[tuple[Path, Path]]:
    """Save ``model`` into ``tmp`` for ``out_path``; weights go to ``<name>.onnx.data`` beside it
    above ``external_data_threshold`` bytes. The (staged, target) pairs for ``publish``."""
    staged = [(tmp / out_path.name, out_path)]
    if weight_bytes(model) > external_data_threshold:
        data_name = out_path.name + ".data"
        ir.save(model, staged[0][0], external_data=data_name)
        staged.append((tmp / data_name, out_path.with_name(data_name)))
    else:
        ir.save(model, staged[0][0])
    return staged
