"""Is an exporter's ONNX model a sound file for the inputs the user gave? Checked inside every
strategy's attempt (``strategies.base.verify``), so that ``auto`` moves on from a file that is not.

* **Valid**: ``onnx.checker.check_model(full_check=True)`` passes (SSA, types, shape inference) and
  ONNX Runtime loads it. Both see the graph with its weights as typed inputs: the checks are about
  the graph, and serializing hundreds of MiB of weights to check it would cost more than the export.
* **No input dropped**: the file has a graph input for every tensor the user passed (after
  flattening, tensors inside cache and other objects included). A tracer turns a tensor it reads
  as a number (``.item()``) or one inside an object it cannot take into a constant of the graph:
  the file would compute with the export's value whatever is fed later. So is one used only through
  its shape (``torch.zeros(x.shape[0])``) when that dimension is static: torch.onnx's TorchScript
  path folds the shape and drops the input. Unless the user allowed it by name
  (``export(allow_dropped_inputs=("heads",))``), such a file fails its attempt; allowed, it passes
  with a warning per dropped input.
"""
from __future__ import annotations

import onnx
import onnx_ir as ir
import torch
from torch.utils import _pytree as pytree

from .errors import first_line
from .inputs import forward_params
from .runtime import load_error, weights_as_inputs


class Unsound(Exception):
    """The file is not sound; the message says why in one line."""


def check_valid(model: ir.Model) -> None:
    """``Unsound`` when the graph fails ONNX's full check or ONNX Runtime cannot load it."""
    with weights_as_inputs(model):
        proto = ir.serde.serialize_model(model)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise Unsound(f"the file fails onnx.checker (full check): {first_line(str(e), 240)}") from None
    why = load_error(proto.SerializeToString())
    if why is not None:
        raise Unsound(f"ONNX Runtime cannot load the file: {first_line(why, 240)}")


def given_tensors(model: torch.nn.Module, args: tuple, kwargs: dict) -> list[str]:
    """The names of every tensor among the inputs, objects' attributes included
    (``past_key_values.layers.0.keys``), in order."""
    names = [p.name for p in forward_params(model).values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    out: list[str] = []
    seen: set[int] = set()

    def visit(name: str, value, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            out.append(name)
            return
        if depth > 6 or id(value) in seen or value is None or isinstance(value, (str, bytes, int, float, bool)):
            return
        seen.add(id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                visit(f"{name}.{k}", v, depth + 1)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(f"{name}.{i}", v, depth + 1)
        elif type(value) in pytree.SUPPORTED_NODES:
            for i, v in enumerate(pytree.tree_flatten(value)[0]):
                visit(f"{name}.{i}", v, depth + 1)
        elif hasattr(value, "__dict__") and not isinstance(value, torch.nn.Module):
            for k, v in vars(value).items():
                visit(f"{name}.{k}", v, depth + 1)

    for i, a in enumerate(args):
        visit(names[i] if i < len(names) else f"input_{i}", a, 0)
    for k, v in kwargs.items():
        visit(k, v, 0)
    return out


def check_inputs_kept(model: ir.Model, given: list[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    """``Unsound`` naming the inputs the file dropped, when it has fewer graph inputs than ``given``;
    the inputs named in ``allowed`` (``export(allow_dropped_inputs=...)``; a name also allows the
    tensors inside it, ``extra`` covers ``extra.shift``) may go, each said in one returned warning."""
    graph_inputs = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
    if len(graph_inputs) >= len(given):
        return []
    present = set(graph_inputs)
    dropped = [n for n in given if n not in present and n.replace(".", "_") not in present]
    if len(dropped) != len(given) - len(graph_inputs):
        dropped = given[len(graph_inputs):] if all(g in given for g in graph_inputs) else dropped
    matched = len(dropped) == len(given) - len(graph_inputs)
    refused = [n for n in dropped if not (matched and is_allowed(n, allowed))]
    if refused:
        listed = ", ".join(refused[:6]) + (" ..." if len(refused) > 6 else "")
        raise Unsound(f"the file dropped {len(given) - len(graph_inputs)} of the {len(given)} input tensors given "
                      f"({listed}): it computes with their export-time values (.item(), a static shape, an object "
                      f"the tracer cannot take); to accept: allow_dropped_inputs={tuple(refused[:6])!r} "
                      f"or --allow-dropped-input {refused[0]}")
    return [f"the file has no input for {name} (allowed by allow_dropped_inputs): it computes with the "
            "export-time value; feed the file without it" for name in dropped]


def is_allowed(name: str, allowed: frozenset[str]) -> bool:
    """Whether ``allowed`` names the input tensor ``name`` or an input holding it."""
    return any(name == a or name.startswith(a + ".") for a in allowed)
