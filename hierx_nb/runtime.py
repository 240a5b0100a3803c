"""The one ONNX Runtime module: the model to run, sessions, feeds, input checking, weights fed as inputs.

Validation, per-module divergence, profile, extraction and the fx strategy all run models through
``session``. A model is an ``OnnxModel``: a file (ORT loads it itself; onnx-ir reads it only when
the graph is needed) or an ``onnx_ir.Model`` in memory, or both (an export written to disk).

Feeds come from one of three places, in this order of preference: the user's ``inputs`` (an
``--inputs`` SPEC or ``{name: array}``, checked strictly against the graph: an input the graph
does not have, one left out, or a wrong shape or dtype is an ``InputMismatch``), the reference's
PyTorch inputs (by name where the exporter kept the forward's names, else by position), or inputs
generated from the graph's input types (symbolic dimensions 1, integers 0).
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import torch

from .errors import ExportError, InputError, InputMismatch, NoSuchFile, NotOnnxFile, StructureOnly, UnknownChoice, first_line
from .model_ref import parse_inputs
from .reference import Reference, to_numpy
from .tagging import STRUCTURE_ONLY_KEY

LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}

Named = list[tuple[str, np.ndarray]]


class OnnxModel:
    """An ONNX model given as a file, in memory, or both; ``of`` accepts any of the forms users hold."""

    def __init__(self, path: str | PathLike | None = None, model: ir.Model | None = None):
        if path is None and model is None:
            raise ExportError("no ONNX model: neither a graph in memory nor a file")
        self.path = Path(path) if path is not None else None
        self._model = model

    @classmethod
    def of(cls, model) -> OnnxModel:
        """``model``: an ``OnnxModel``, ``onnx_ir.Model``, ``onnx.ModelProto`` or a path to an ``.onnx`` file."""
        if isinstance(model, OnnxModel):
            return model
        if isinstance(model, ir.Model):
            return cls(model=model)
        if isinstance(model, onnx.ModelProto):
            return cls(model=ir.serde.deserialize_model(model))
        if isinstance(model, (str, PathLike)):
            if not Path(model).is_file():
                raise NoSuchFile(f"no such file: {str(model)!r}")
            return cls(path=model)
        raise InputError(f"expected an ONNX model (a path, onnx_ir.Model or onnx.ModelProto), got {type(model).__name__}")

    @property
    def ir(self) -> ir.Model:
        """The onnx-ir model (read from the file on first use; external weights stay on disk until read)."""
        if self._model is None:
            try:
                self._model = ir.load(self.path)
            except Exception as e:
                raise NotOnnxFile(f"{str(self.path)!r} is not a readable ONNX file ({type(e).__name__}: {first_line(str(e))})") from None
        return self._model

    @property
    def structure_only(self) -> bool:
        """Written without weights (``hierx.structure_only``): ONNX Runtime cannot run it."""
        return self.ir.metadata_props.get(STRUCTURE_ONLY_KEY) == "true"

    def structure(self) -> onnx.ModelProto:
        """The model as a protobuf without weight data: its structure, cheap to read and compare."""
        if self.path is not None:
            return onnx.load(str(self.path), load_external_data=False)
        proto = ir.serde.serialize_model(self.ir)
        for init in proto.graph.initializer:
            init.ClearField("raw_data")
        return proto


def require_weights(model: OnnxModel, action: str) -> None:
    """``StructureOnly`` when ``model`` is a structure-only export: there is nothing to run."""
    if model.structure_only:
        raise StructureOnly.for_action(action)


@contextlib.contextmanager
def weights_as_inputs(model: ir.Model):
    """Within the block, weights are typed graph inputs without data: a valid ONNX file that holds
    the whole structure and no weights (it runs only if every weight is fed)."""
    graph = model.graph
    saved = dict(graph.initializers)
    added = [v for v in saved.values() if v not in graph.inputs]
    graph.initializers.clear()
    for v in saved.values():
        v.const_value = None if v.const_value is not None and _on_meta(v.const_value) else v.const_value
    graph.inputs.extend(added)
    try:
        yield
    finally:
        for _ in added:
            graph.inputs.pop()
        graph.initializers.update(saved)


def _on_meta(tensor) -> bool:
    raw = getattr(tensor, "raw", None)
    return isinstance(raw, torch.Tensor) and raw.device.type == "meta"


@dataclass
class Session:
    """An ONNX Runtime CPU session and the weights to feed besides the model's own inputs (a copy
    with extra outputs takes its weights as inputs: they are not written again)."""

    session: ort.InferenceSession
    weights: Named = field(default_factory=list)

    @property
    def inputs(self) -> list:
        """The graph's own inputs (``NodeArg``: name, shape, type), weights fed as inputs left out."""
        fed = {n for n, _ in self.weights}
        return [i for i in self.session.get_inputs() if i.name not in fed]

    def feeds(self, inputs=None, reference: Reference | None = None) -> dict[str, np.ndarray]:
        """The feeds for a run: the user's ``inputs`` (checked), else the reference's, else generated."""
        if inputs is not None:
            named = check_inputs(self.inputs, user_inputs(inputs))
        elif reference is not None:
            named = match_inputs(self.inputs, reference.named_inputs)
        else:
            named = generated_inputs(self.inputs)
        return {**named, **dict(self.weights)}

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """``{output name: array}`` (all outputs, or ``outputs`` in that order); ``ExportError`` when ORT fails."""
        names = outputs or [o.name for o in self.session.get_outputs()]
        try:
            got = self.session.run(names, feeds)
        except Exception as e:  # e.g. inputs of other sizes for a file with fixed shapes
            raise ExportError(f"ONNX Runtime cannot run the model on these inputs: {first_line(str(e))}") from None
        return {n: np.asarray(v) for n, v in zip(names, got)}


def load_error(source: bytes | str) -> str | None:
    """Why ONNX Runtime (CPU, graph optimizations off: loading only) cannot load ``source`` (a
    serialized model or a file path), as the first line of its message; None when it loads."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        text = str(e).strip()
        return text.splitlines()[0] if text else type(e).__name__
    return None


@contextlib.contextmanager
def session(model: OnnxModel, *, extra_outputs: Iterable[ir.Value] = (), optimization: str = "all",
            profile_prefix: str | None = None, optimized_path: str | None = None, threads: int | None = None,
            prepack: bool = True) -> Iterator[Session]:
    """An ONNX Runtime CPU session on ``model`` (its file, or its in-memory graph saved to a
    temporary one), with ``extra_outputs`` added as graph outputs of a copy whose weights are fed
    as inputs. ``optimization``: ``all`` (ORT's default), ``extended``, ``basic`` or ``none``;
    ``profile_prefix`` turns ORT's profiler on; ``optimized_path`` saves the optimized graph (its
    weights to a side file). ``prepack=False`` leaves weights in place (no repacked copy for the
    matrix kernels): loading costs next to nothing and a run somewhat more, for a session run once.
    ``ExportError`` when ORT cannot load the model."""
    if optimization not in LEVELS:
        raise UnknownChoice.of("optimization level", optimization, LEVELS)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = LEVELS[optimization]
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    if not prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if optimized_path is not None:
        opts.optimized_model_filepath = optimized_path
        # Only the optimized graph's structure is wanted: weights go to a side file, not the protobuf.
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                      Path(optimized_path).name + ".data")
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    extra_outputs = list(dict.fromkeys(extra_outputs))
    weights: Named = []
    with tempfile.TemporaryDirectory(prefix="hierx-ort-") as tmp:
        if extra_outputs or model.path is None:
            path = Path(tmp) / "model.onnx"
            ir_model = model.ir
            graph = ir_model.graph
            present = {v.name for v in graph.outputs}
            added = [v for v in extra_outputs if v.name not in present]
            graph.outputs.extend(added)
            try:
                if extra_outputs:
                    # A copy to look inside: its weights are fed as inputs at run time (from memory,
                    # or mapped from the file), not written again; only the graph is saved.
                    weights = [(v.name, v.const_value.numpy()) for v in graph.initializers.values()
                               if v.const_value is not None]
                    with weights_as_inputs(ir_model):
                        ir.save(ir_model, path)
                else:
                    # External data: raw weight writes, no 2 GiB protobuf limit; the model itself is unchanged.
                    ir.save(ir_model, path, external_data="model.onnx.data")
            finally:
                for _ in added:
                    graph.outputs.pop()
        else:
            path = model.path
        try:
            ort_session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(f"ONNX Runtime cannot load the model: {first_line(str(e))}") from None
        yield Session(ort_session, weights)


# -- feeds --------------------------------------------------------------------------------------------
def user_inputs(inputs) -> list[tuple[str | None, np.ndarray]]:
    """``inputs`` (an ``--inputs`` SPEC or ``{name: array or tensor}``) as ``(name, array)``; the
    name is None for a positional SPEC item."""
    if isinstance(inputs, str):
        args, kwargs = parse_inputs(inputs)
        return [(None, to_numpy(t)) for t in args] + [(k, to_numpy(t)) for k, t in kwargs.items()]
    if isinstance(inputs, dict):
        return [(str(k), to_numpy(v) if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in inputs.items()]
    raise InputError(f"inputs must be an --inputs SPEC string or a dict of arrays, got {type(inputs).__name__}")


def _dims(arg) -> list:
    return list(arg.shape) if arg.shape is not None else []


def _ort_dtype(arg) -> str:
    """``tensor(float)`` -> ``float32``: the dtype name a user writes (SPEC, numpy)."""
    name = arg.type[len("tensor("):-1] if arg.type.startswith("tensor(") else arg.type
    return {"float": "float32", "double": "float64"}.get(name, name)


def expected(arg) -> str:
    """How an input's expected shape and dtype are written in messages: ``(batch, 8) int64``."""
    dims = ", ".join(str(d) if isinstance(d, int) and d >= 0 else (d or "?") for d in _dims(arg))
    return f"({dims}{',' if len(_dims(arg)) == 1 else ''}) {_ort_dtype(arg)}"


def _given(arr: np.ndarray) -> str:
    return f"({', '.join(map(str, arr.shape))}{',' if arr.ndim == 1 else ''}) {arr.dtype}"


def check_inputs(args: list, given: list[tuple[str | None, np.ndarray]]) -> dict[str, np.ndarray]:
    """The user's inputs keyed by the graph's input names: positional ones in order, named ones by
    name. ``InputMismatch`` naming the input, its expected shape and dtype, when a name is not one of
    the graph's inputs, an input is left out, or a shape or dtype does not fit."""
    by_name = {a.name: a for a in args}
    wanted = [(a.name, _dims(a), _ort_dtype(a)) for a in args]  # for the advice: what to give instead
    listing = "; ".join(f"{a.name} {expected(a)}" for a in args) or "none"
    feeds: dict[str, np.ndarray] = {}
    positional = [arr for name, arr in given if name is None]
    if len(positional) > len(args):
        raise InputMismatch.of(f"{len(positional)} positional inputs given, but the graph takes {len(args)}: {listing}", wanted)
    for arg, arr in zip(args, positional):
        feeds[arg.name] = arr
    for name, arr in given:
        if name is None:
            continue
        if name not in by_name:
            raise InputMismatch.of(f"the graph has no input {name!r}; its inputs: {listing}", wanted)
        if name in feeds:
            raise InputMismatch.of(f"input {name!r} is given twice (by position and by name)", wanted)
        feeds[name] = arr
    for arg in args:
        arr = feeds.get(arg.name)
        if arr is None:
            raise InputMismatch.of(f"input {arg.name!r} is not given: the graph expects {expected(arg)}; its inputs: {listing}", wanted)
        dims = _dims(arg)
        fits = len(dims) == arr.ndim and all(not isinstance(d, int) or d < 0 or d == n for d, n in zip(dims, arr.shape))
        if not fits or str(arr.dtype) != _ort_dtype(arg):
            raise InputMismatch.of(f"input {arg.name!r} is {_given(arr)}, but the graph expects {expected(arg)}", wanted)
    return feeds


def match_inputs(args: list, named: Named) -> dict[str, np.ndarray]:
    """A reference's inputs keyed by the graph's input names: by name where the exporter kept the
    forward's parameter names, else by position. ``ExportError`` when neither fits (an exporter
    dropped an unused input and renamed the others)."""
    wanted = [a.name for a in args]
    by_name = dict(named)
    if all(n in by_name for n in wanted):
        return {n: by_name[n] for n in wanted}
    if len(wanted) == len(named):
        return {n: v for n, (_, v) in zip(wanted, named)}
    raise ExportError(f"cannot match the ONNX inputs {wanted} to the inputs given {[n for n, _ in named]}")


def generated_inputs(args: list) -> dict[str, np.ndarray]:
    """Inputs made from the graph's input types by the ``--inputs`` generator: symbolic dimensions 1,
    integers 0, floats standard normal (seeded: the same graph always gets the same inputs)."""
    if not args:
        return {}
    items, shapes = [], []
    for arg in args:
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in _dims(arg)]
        dtype = _ort_dtype(arg)
        rng = "[0,1)" if dtype.startswith(("int", "uint")) else ""
        items.append(f"{'x'.join(map(str, dims or [1]))}:{dtype}{rng}")  # positional: graph names need not be identifiers
        shapes.append(tuple(dims))
    generated, _ = parse_inputs(",".join(items))
    return {arg.name: to_numpy(t).reshape(shape) for arg, t, shape in zip(args, generated, shapes)}
