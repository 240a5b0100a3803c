"""Run a tagged ONNX model in ONNX Runtime (CPU) and compare its outputs with PyTorch's."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import runtime
from .comparison import compare, tolerance
from .divergence import compare_modules
from .errors import ExportError, NoReference
from .reference import Reference
from .runtime import OnnxModel


def compare_outputs(model: OnnxModel, ref: Reference, atol: float | None = None, rtol: float | None = None,
                    expected: list[tuple[np.ndarray, str]] | None = None, **session_options) -> pd.DataFrame:
    """One row per model output: ``output, shape, max_abs_diff, max_rel_diff, ok`` (ONNX Runtime vs PyTorch).

    ``expected``: PyTorch's outputs when already computed (else the reference runs the model);
    ``session_options``: ``runtime.session``'s (``optimization``, ``prepack``, ``threads``)."""
    expected = ref.outputs() if expected is None else expected
    with runtime.session(model, **session_options) as run:
        got = run.run(run.feeds(reference=ref), ref.output_names)
    if len(got) != len(expected):
        raise ExportError(f"ONNX model has {len(got)} outputs, PyTorch gave {len(expected)} tensors")
    rows = []
    for (name, arr), (want, dtype) in zip(got.items(), expected):
        a, r = tolerance(dtype, atol, rtol)
        rows.append((name, tuple(want.shape), *compare(arr, want, a, r)))
    return pd.DataFrame(rows, columns=["output", "shape", "max_abs_diff", "max_rel_diff", "ok"])


def validate(model, reference: Reference | None, *, per_module: bool = False, atol: float | None = None,
             rtol: float | None = None) -> pd.DataFrame:
    """``model`` (an ``onnx_ir.Model``, a path or an ``OnnxModel``) run in ONNX Runtime (CPU) against
    ``reference``, PyTorch's model on its inputs. ``atol``/``rtol`` default by dtype (``TOLERANCES``).

    One row per output (``output, shape, max_abs_diff, max_rel_diff, ok``), or with ``per_module``
    one row per executed module (``divergence.COLUMNS``; modules read from the graph's
    ``hierx.module`` tags) with ``attrs["first_divergent"]``. ``StructureOnly`` for a structure-only
    model, ``NoReference`` without a reference, ``ExportError`` when the model cannot be run.
    """
    model = OnnxModel.of(model)
    runtime.require_weights(model, "validate")
    if reference is None:
        raise NoReference.for_action("validate")
    if per_module:
        return compare_modules(model, reference, atol, rtol)
    return compare_outputs(model, reference, atol, rtol)


def mismatch_line(report: pd.DataFrame) -> str:
    """One line on the worst output of a comparison that failed."""
    bad = report[~report["ok"]]
    worst = bad.loc[bad["max_abs_diff"].idxmax()]
    return (f"ONNX Runtime output {worst.output!r} differs from PyTorch's: max abs diff {worst.max_abs_diff:.3g}, "
            f"max rel diff {worst.max_rel_diff:.3g}")
