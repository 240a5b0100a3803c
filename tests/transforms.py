"""What users do to an exported file before shipping it, each with the real library: ``TRANSFORMS``
maps a name to ``f(src_path, dst_path)``. Used by tests/test_retag.py and benchmarks/retag_precision.py."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

logging.getLogger().setLevel(logging.ERROR)  # the quantizers' "consider pre-processing" advice


def _ort_level(level):
    def run(src: Path, dst: Path) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        opts.optimized_model_filepath = str(dst)
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    return run


def _onnxslim(src, dst):
    import onnxslim

    onnx.save(onnxslim.slim(onnx.load(str(src))), str(dst))


def _onnxsim(src, dst):
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(src)))
    assert ok, "onnxsim could not check its result"
    onnx.save(model, str(dst))


def _onnxscript(src, dst):
    import onnxscript.optimizer

    model = ir.load(str(src))
    onnxscript.optimizer.optimize(model)
    ir.save(model, str(dst))


def fp16(src, dst, keep_io_types: bool = True, **kwargs):
    """onnxconverter-common's fp16 conversion. Its ``keep_io_types=True`` writes a file ONNX Runtime
    rejects when a graph output also feeds a node (BERT's and ViT's pooled token: a Gather on the last
    hidden state): then fp16 inputs and outputs."""
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=keep_io_types, **kwargs), str(dst))
    if keep_io_types:
        try:
            ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
        except Exception:
            fp16(src, dst, keep_io_types=False, **kwargs)


def session(path) -> ort.InferenceSession:
    """A CPU session without graph optimization: ONNX Runtime fails to optimize again some files its own
    offline optimizer wrote ("Attempt to replace the existing tensor"), and offline-optimized files are
    meant to be loaded so."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds_for(path, count: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random inputs fitting the file's graph inputs (symbolic dimensions 2, integers in [0, 50))."""
    session_ = session(path)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        feed = {}
        for i in session_.get_inputs():
            shape = [d if isinstance(d, int) else 2 for d in i.shape]
            if "int" in i.type:
                feed[i.name] = rng.integers(0, 50, shape).astype(np.int64)
            else:
                dtype = np.float16 if "float16" in i.type else np.float32
                feed[i.name] = rng.standard_normal(shape).astype(dtype)
        out.append(feed)
    return out


class _Reader(CalibrationDataReader):
    def __init__(self, path):
        self.feeds = feeds_for(path)
        self.it = iter(self.feeds)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.feeds)


def _quantize_dynamic(src, dst):
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def _quantize_static(fmt):
    def run(src, dst):
        activations = QuantType.QUInt8 if fmt == QuantFormat.QOperator else QuantType.QInt8
        quantize_static(str(src), str(dst), _Reader(src), quant_format=fmt, weight_type=QuantType.QInt8,
                        activation_type=activations)
    return run


def _ort_transformers(src, dst):
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
    model.save_model_to_file(str(dst))


def _hf_ort_fusions(src, dst):
    """transformers' exporter with ort_fusions="cpu": its fusion step (Attention, SkipLayerNormalization,
    BiasGelu) applied to the exported file, as OnnxExporter applies it to the graph it exported."""
    from transformers.exporters.onnxruntime_fusions import fuse_for_onnxruntime

    model = ir.load(str(src))
    fuse_for_onnxruntime(model, "cpu")
    ir.save(model, str(dst))


_LEVEL = ort.GraphOptimizationLevel
TRANSFORMS = {
    "ort_basic": _ort_level(_LEVEL.ORT_ENABLE_BASIC),
    "ort_extended": _ort_level(_LEVEL.ORT_ENABLE_EXTENDED),
    "ort_all": _ort_level(_LEVEL.ORT_ENABLE_ALL),
    "onnxslim": _onnxslim,
    "onnxsim": _onnxsim,
    "onnxscript": _onnxscript,
    "fp16": fp16,
    "quantize_dynamic": _quantize_dynamic,
    "quantize_static_qdq": _quantize_static(QuantFormat.QDQ),
    "quantize_static_qoperator": _quantize_static(QuantFormat.QOperator),
    "ort_transformers_optimizer": _ort_transformers,
    "hf_ort_fusions_cpu": _hf_ort_fusions,
}
