"""Safe output: check the target before any work, write into a temporary folder beside it, move into place."""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import onnx_ir as ir

from .errors import OutputFolderMissing, OutputIsFolder, OutputNotWritable

# Weights above this go to ``<file>.onnx.data``: protobuf cannot hold 2 GiB, and writing raw weight
# bytes is several times faster than serializing them into the protobuf (as torch.onnx does).
EXTERNAL_DATA_THRESHOLD = 64 * 1024**2


def check_output(path: str | os.PathLike) -> Path:
    """The output path, resolved. ``OutputIsFolder`` if it is a folder, ``OutputFolderMissing`` if its
    folder does not exist, ``OutputNotWritable`` if it cannot be written."""
    out = Path(path).expanduser().resolve()
    if out.is_dir():
        raise OutputIsFolder(f"output {str(path)!r} is a folder", hint="name a file inside it")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise OutputNotWritable(f"{str(folder)!r} is a file, not a folder")
    if not folder.is_dir():
        raise OutputFolderMissing(f"output folder {str(folder)!r} does not exist",
                                  hint=f"create it first (Path({str(folder)!r}).mkdir(parents=True)) or pass another path",
                                  shell_hint=f"create it first (mkdir -p {shlex.quote(str(folder))}) or choose another -o path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritable(f"output folder {str(folder)!r} is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise OutputNotWritable(f"output file {str(out)!r} exists and is read-only",
                                hint="remove it or pass another path", shell_hint="remove it or choose another -o path")
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
