"""How an ONNX value is compared with PyTorch's: tolerances by dtype, and the differences."""
from __future__ import annotations

import numpy as np

# Default (atol, rtol) by the dtype of PyTorch's value: half precision rounds at ~1e-3 relative,
# so fp32 tolerances would call every fp16/bf16 export wrong.
TOLERANCES = {"float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)}
DEFAULT_TOLERANCE = (1e-4, 1e-3)


def tolerance(dtype: str, atol: float | None, rtol: float | None) -> tuple[float, float]:
    """``(atol, rtol)``: the caller's where given, else the default for ``dtype`` (a torch dtype's name)."""
    d_atol, d_rtol = TOLERANCES.get(str(dtype).replace("torch.", ""), DEFAULT_TOLERANCE)
    return (d_atol if atol is None else atol), (d_rtol if rtol is None else rtol)


def compare(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> tuple[float, float, bool]:
    """``(max_abs_diff, max_rel_diff, ok)`` of ONNX's ``got`` against PyTorch's ``want``.

    Equal values count as no difference (so matching infinities of attention masks are fine); a
    shape mismatch is an infinite difference.
    """
    got = np.asarray(got)
    if got.shape != want.shape:
        return float("inf"), float("inf"), False
    if want.size == 0:
        return 0.0, 0.0, True
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(g - w))
    diff = np.where(np.isnan(diff), np.inf, diff)
    max_abs = float(diff.max())
    max_rel = float((diff / np.maximum(np.abs(np.where(np.isfinite(w), w, 0.0)), 1e-12)).max())
    ok = bool((diff <= atol + rtol * np.abs(np.where(np.isfinite(w), w, 0.0))).all())
    return max_abs, max_rel, ok
