"""Run a tagged ONNX model in ONNX Runtime (CPU) and compare its outputs with PyTorch's."""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pandas as pd
import torch

from .errors import ExportError, UnknownChoice, first_line
from .inputs import named_tensor_inputs, normalize, tensor_leaves
from .preserve import copy_inputs

# Default (atol, rtol) by the dtype of PyTorch's value: half precision rounds at ~1e-3 relative,
# so fp32 tolerances would call every fp16/bf16 export wrong.
TOLERANCES = {"float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)}
DEFAULT_TOLERANCE = (1e-4, 1e-3)


def tolerance(dtype: str, atol: float | None, rtol: float | None) -> tuple[float, float]:
    """``(atol, rtol)``: the caller's where given, else the default for ``dtype`` (a torch dtype's name)."""
    d_atol, d_rtol = TOLERANCES.get(str(dtype).replace("torch.", ""), DEFAULT_TOLERANCE)
    return (d_atol if atol is None else atol), (d_rtol if rtol is None else rtol)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A copy of ``t`` as numpy (bfloat16 widened to float32: numpy has no bfloat16)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


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


def session_feeds(session, named: list[tuple[str, np.ndarray]]) -> dict:
    """The export's inputs keyed by the session's input names: by name where the exporter kept the
    forward's parameter names, else by position. ``ExportError`` when neither fits (an exporter
    dropped an unused input and renamed the others)."""
    wanted = [i.name for i in session.get_inputs()]
    by_name = dict(named)
    if all(n in by_name for n in wanted):
        return {n: by_name[n] for n in wanted}
    if len(wanted) == len(named):
        return {n: v for n, (_, v) in zip(wanted, named)}
    raise ExportError(f"cannot match the ONNX inputs {wanted} to the inputs given {[n for n, _ in named]}")


@contextlib.contextmanager
def ort_session(result, extra_outputs: list[ir.Value] = (), optimization: str = "all", profile_prefix: str | None = None,
                optimized_path: str | None = None, threads: int | None = None):
    """An ONNX Runtime CPU session on ``result``'s model (its file, or its in-memory graph),
    with ``extra_outputs`` added as graph outputs of a copy. Yields ``(session, weights)``:
    ``weights`` are (name, array) inputs to feed besides the model's own (the copy with extra
    outputs takes its weights as inputs), empty otherwise."""
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    if optimization not in levels:
        raise UnknownChoice.of("optimization level", optimization, levels)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = levels[optimization]
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if optimized_path is not None:
        opts.optimized_model_filepath = optimized_path
        # Only the optimized graph's structure is wanted: weights go to a side file, not the protobuf.
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                      Path(optimized_path).name + ".data")
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    model = graph_of(result)
    weights: list[tuple[str, np.ndarray]] = []
    with tempfile.TemporaryDirectory(prefix="hierx-ort-") as tmp:
        if extra_outputs or result.onnx_path is None:
            from .exporter import weights_as_inputs

            path = Path(tmp) / "model.onnx"
            graph = model.graph
            present = {v.name for v in graph.outputs}
            added = [v for v in dict.fromkeys(extra_outputs) if v.name not in present]
            graph.outputs.extend(added)
            try:
                if extra_outputs:
                    # A copy to look inside: its weights are fed as inputs at run time (from memory,
                    # or mapped from the file), not written again; only the graph is saved.
                    weights = [(v.name, v.const_value.numpy()) for v in graph.initializers.values()
                               if v.const_value is not None]
                    with weights_as_inputs(model):
                        ir.save(model, path)
                else:
                    # External data: raw weight writes, no 2 GiB protobuf limit; the model itself is unchanged.
                    ir.save(model, path, external_data="model.onnx.data")
            finally:
                for _ in added:
                    graph.outputs.pop()
        else:
            path = result.onnx_path
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(f"ONNX Runtime cannot load the model: {first_line(str(e))}") from None
        yield session, weights


def graph_of(result) -> ir.Model:
    """``result``'s onnx-ir model: in memory after an export, read from its file after ``load``."""
    if result.onnx_model is None:
        if result.onnx_path is None:
            raise ExportError("this result has neither a graph in memory nor a file")
        result.onnx_model = ir.load(result.onnx_path)
    return result.onnx_model


class Reference:
    """A PyTorch model and the inputs to compare an ONNX file against (eval mode, no grad)."""

    def __init__(self, model: torch.nn.Module, args=(), kwargs: dict | None = None):
        self.model = model
        self.args, self.kwargs = normalize(model, args, kwargs)
        self.named_inputs = [(n, to_numpy(t)) for n, t in named_tensor_inputs(model, self.args, self.kwargs)]
        self.output_names: list[str] | None = None  # the ONNX outputs to compare, in order (None: all)

    @contextlib.contextmanager
    def evaluating(self):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)

    def outputs(self) -> list[tuple[np.ndarray, str]]:
        """PyTorch's output tensors (numpy) with their torch dtype names."""
        args, kwargs = copy_inputs(self.args, self.kwargs)  # a cache object given as input grows when run
        with self.evaluating():
            leaves = tensor_leaves(self.model(*args, **kwargs))
        return [(to_numpy(t), str(t.dtype)) for t in leaves]


def compare_outputs(result, ref: Reference, atol: float | None, rtol: float | None) -> pd.DataFrame:
    """One row per model output: ``output, shape, max_abs_diff, max_rel_diff, ok`` (ONNX Runtime vs PyTorch)."""
    expected = ref.outputs()
    with ort_session(result) as (session, _):
        feeds = session_feeds(session, ref.named_inputs)
        try:
            outputs = session.run(ref.output_names, feeds)
        except Exception as e:  # e.g. inputs of other sizes for a file with fixed shapes
            raise ExportError(f"ONNX Runtime cannot run the model on these inputs: {first_line(str(e))}") from None
        names = ref.output_names or [o.name for o in session.get_outputs()]
    if len(outputs) != len(expected):
        raise ExportError(f"ONNX model has {len(outputs)} outputs, PyTorch gave {len(expected)} tensors")
    rows = []
    for name, got, (want, dtype) in zip(names, outputs, expected):
        a, r = tolerance(dtype, atol, rtol)
        rows.append((name, tuple(want.shape), *compare(got, want, a, r)))
    return pd.DataFrame(rows, columns=["output", "shape", "max_abs_diff", "max_rel_diff", "ok"])


def mismatch_line(report: pd.DataFrame) -> str:
    """One line on the worst output of a comparison that failed."""
    bad = report[~report["ok"]]
    worst = bad.loc[bad["max_abs_diff"].idxmax()]
    return (f"ONNX Runtime output {worst.output!r} differs from PyTorch's: max abs diff {worst.max_abs_diff:.3g}, "
            f"max rel diff {worst.max_rel_diff:.3g}")
