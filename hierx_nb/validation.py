"""Run a tagged ONNX model in ONNX Runtime (CPU) and compare its outputs with PyTorch's."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pandas as pd
import torch

from .errors import ExportError
from .inputs import tensor_leaves


def _reference(model: torch.nn.Module, args: tuple, kwargs: dict) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return tensor_leaves(model(*args, **kwargs))
    finally:
        model.train(was_training)


def session_feeds(session, named: list[tuple[str, "np.ndarray"]]) -> dict:
    """The export's inputs keyed by the session's input names: by name where the exporter kept the
    forward's parameter names, else by position. ``ExportError`` when neither fits (an exporter
    dropped an unused input and renamed the others)."""
    wanted = [i.name for i in session.get_inputs()]
    by_name = dict(named)
    if all(n in by_name for n in wanted):
        return {n: by_name[n] for n in wanted}
    if len(wanted) == len(named):
        return {n: v for n, (_, v) in zip(wanted, named)}
    raise ExportError(f"cannot match the ONNX inputs {wanted} to the export's inputs {[n for n, _ in named]}")


def make_validator(model: torch.nn.Module, args: tuple, kwargs: dict, named_inputs: list[tuple[str, torch.Tensor]]):
    """A ``validate(result, atol, rtol, raise_on_mismatch)`` bound to the export's model and inputs.

    PyTorch's reference outputs are computed when it is called (in eval mode), not at export time.
    """
    feeds_all = [(n, t.detach().cpu().numpy()) for n, t in named_inputs]

    def validate(result, atol: float, rtol: float, raise_on_mismatch: bool) -> pd.DataFrame:
        import onnxruntime as ort

        expected = [t.detach().cpu().numpy() for t in _reference(model, args, kwargs)]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if result.onnx_path is not None:
            session = ort.InferenceSession(str(result.onnx_path), opts, providers=["CPUExecutionProvider"])
        else:
            proto = ir.serde.serialize_model(result.onnx_model)
            session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        outputs = session.run(None, session_feeds(session, feeds_all))
        names = [o.name for o in session.get_outputs()]
        if len(outputs) != len(expected):
            raise ExportError(f"ONNX model has {len(outputs)} outputs, PyTorch gave {len(expected)} tensors")
        rows = []
        for name, got, want in zip(names, outputs, expected):
            got = np.asarray(got)
            if got.shape != want.shape:
                rows.append((name, tuple(want.shape), float("inf"), float("inf"), False))
                continue
            if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
                diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).astype(np.float64)
            else:
                diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            max_abs = float(diff.max()) if diff.size else 0.0
            denom = np.abs(want.astype(np.float64)) if diff.size else np.zeros(0)
            max_rel = float((diff / np.maximum(denom, 1e-12)).max()) if diff.size else 0.0
            ok = bool(np.allclose(got.astype(np.float64), want.astype(np.float64), atol=atol, rtol=rtol))
            rows.append((name, tuple(want.shape), max_abs, max_rel, ok))
        report = pd.DataFrame(rows, columns=["output", "shape", "max_abs_diff", "max_rel_diff", "ok"])
        if raise_on_mismatch and not report["ok"].all():
            bad = report[~report["ok"]].iloc[0]
            raise ExportError(f"ONNX Runtime output {bad.output!r} differs from PyTorch's: max abs diff "
                              f"{bad.max_abs_diff:.3g} (atol {atol}), max rel diff {bad.max_rel_diff:.3g}")
        return report

    return validate
