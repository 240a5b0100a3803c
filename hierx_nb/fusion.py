"""Nodes an exporter's optimizer made from several modules' nodes: BatchNorm folded into the Conv,
ConvTranspose or Linear before it.

Rule: such a node is tagged with the module whose operation it computes (the Conv, the Linear: the
module owning the node's weight) and names the folded modules in its ``hierx.fused`` prop. Found in
two ways, whichever the exporter left:

* the record names the folded module: torch.onnx's dynamo optimizer folds BatchNorm into the Conv
  and keeps the BatchNorm's scope on the result, so a Conv/ConvTranspose/Gemm/MatMul node is
  recorded under a BatchNorm module. Its computing module owns the weight it reads (the initializer
  keeps the parameter's name), else the module whose weight, scaled by the BatchNorm, is its weight.
* the folded module left no node: the TorchScript exporter's constant folding fuses a BatchNorm
  into the Conv before it, keeping the Conv's scope and writing new unnamed weights. A BatchNorm
  that ran but owns no node is folded into the one Conv/ConvTranspose/Gemm/MatMul node whose
  constant weight equals its module's weight scaled by the BatchNorm's ``gamma / sqrt(var + eps)``
  along the output channels (with real weights only: a structure-only export has no values).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx_ir as ir
import torch

from .attribution import NodeAttribution
from .hierarchy import ModuleTree

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
# Relative error under which a weight counts as the module's weight scaled by the BatchNorm (fp32).
_FOLD_RTOL = 1e-4


def _weight_inputs(node: ir.Node) -> list[ir.Value]:
    """The node's constant weight candidates: input 1 (Conv, ConvTranspose, Gemm), either of MatMul's."""
    candidates = node.inputs[:2] if node.op_type == "MatMul" else node.inputs[1:2]
    return [v for v in candidates if v is not None and _const(v) is not None]


def _const(value: ir.Value) -> ir.TensorProtocol | None:
    if value.const_value is not None:
        return value.const_value
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and "value" in producer.attributes:
        return producer.attributes["value"].value
    return None


def _array(tensor) -> np.ndarray | None:
    raw = getattr(tensor, "raw", None)
    if isinstance(raw, torch.Tensor) and raw.device.type == "meta":
        return None
    try:
        return np.asarray(tensor.numpy(), dtype=np.float64)
    except Exception:  # a tensor without data (structure-only)
        return None


def _scale(bn: torch.nn.Module) -> np.ndarray | None:
    """The per-channel factor a folded BatchNorm multiplies the weight by, None without running stats."""
    if bn.running_var is None or bn.running_var.device.type == "meta":
        return None
    scale = 1.0 / np.sqrt(_numpy(bn.running_var) + bn.eps)
    return scale * _numpy(bn.weight) if bn.weight is not None else scale


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """float64 numpy (through numpy: a torch op per weight costs more on a busy machine)."""
    t = tensor.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy().astype(np.float64)


def _fold_error(weight: np.ndarray, scale: np.ndarray, folded: np.ndarray) -> float:
    """Smallest relative error of ``folded`` against ``weight`` (or its transpose) scaled by ``scale``
    along an axis of the channels' size; inf when no layout fits."""
    best = np.inf
    layouts = [weight] + ([weight.T] if weight.ndim == 2 else [])
    for w in layouts:
        if w.shape != folded.shape:
            continue
        for axis in range(min(2, w.ndim)):
            if w.shape[axis] != scale.size:
                continue
            shape = [1] * w.ndim
            shape[axis] = scale.size
            # One element per channel first: most (weight, BatchNorm) pairs fail there, cheaply.
            corner = tuple(slice(None) if i == axis else slice(0, 1) for i in range(w.ndim))
            if _relative_error(folded[corner], w[corner] * scale.reshape(shape)) >= _FOLD_RTOL:
                continue
            best = min(best, _relative_error(folded, w * scale.reshape(shape)))
    return best


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))


def refold(model: ir.Model, attrs: dict[ir.Node, NodeAttribution], tree: ModuleTree,
           torch_model: torch.nn.Module, executed: set[str]) -> dict[ir.Node, NodeAttribution]:
    """A new mapping where each node holding folded BatchNorms is attributed to its computing module
    with ``fused`` naming them (rule in the module docstring); ``attrs`` is not changed."""
    modules = {}
    for name, module in torch_model.named_modules(remove_duplicate=False):
        canonical = tree.canonical(name)
        if canonical is not None:
            modules.setdefault(canonical, module)
    norms = {n for n, m in modules.items() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    if not norms:
        return attrs
    out = dict(attrs)
    compute = [n for n in out if n.op_type in COMPUTE_OPS and _weight_inputs(n)]

    def owner_of(value: ir.Value) -> str | None:
        if not value.name or "." not in value.name:
            return None
        owner = tree.canonical(value.name.rpartition(".")[0])
        return owner if owner is not None and owner not in norms and isinstance(
            getattr(modules.get(owner), "weight", None), torch.Tensor) else None

    arrays: dict[int, np.ndarray | None] = {}  # weights read once however many BatchNorms are tried
    scales = {bn: _scale(modules[bn]) for bn in norms}

    def weight_of(name: str) -> np.ndarray | None:
        weight = getattr(modules.get(name), "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.device.type == "meta":
            return None
        if id(weight) not in arrays:
            arrays[id(weight)] = _numpy(weight)
        return arrays[id(weight)]

    def best_fold(bn: str, node: ir.Node, candidates) -> tuple[float, str | None]:
        scale = scales[bn]
        if scale is None:
            return np.inf, None
        best = (np.inf, None)
        for value in _weight_inputs(node):
            tensor = _const(value)
            if scale.size not in tuple(tensor.shape)[:2]:  # no output-channel axis of the BatchNorm's size
                continue
            if id(tensor) not in arrays:
                arrays[id(tensor)] = _array(tensor)
            folded = arrays[id(tensor)]
            if folded is None:
                continue
            for name in candidates:
                weight = weight_of(name)
                if weight is None or weight.size != folded.size:
                    continue
                err = _fold_error(weight, scale, folded)
                best = min(best, (err, name), key=lambda t: t[0])
        return best

    # 1. The record names the BatchNorm: the node computes its Conv's (Linear's) operation.
    weighted = [n for n, m in modules.items() if n not in norms and isinstance(getattr(m, "weight", None), torch.Tensor)]
    for node in compute:
        a = out[node]
        if a.module not in norms:
            continue
        computing = next((o for o in map(owner_of, _weight_inputs(node)) if o is not None), None)
        if computing is None:
            err, computing = best_fold(a.module, node, weighted)
            computing = computing if err < _FOLD_RTOL else None
        if computing is not None:
            out[node] = replace(a, module=computing, fused=(*a.fused, a.module))
    # 2. A BatchNorm that ran and owns no node: folded into the node whose weight it scaled.
    owned = {a.module for a in out.values()} | {m for a in out.values() for m in a.fused}
    for bn in sorted(norms & executed - owned):
        found = []
        for node in compute:
            err, _ = best_fold(bn, node, [out[node].module])
            if err < _FOLD_RTOL:
                found.append((err, node))
        if found:
            _, node = min(found, key=lambda t: t[0])
            out[node] = replace(out[node], fused=(*out[node].fused, bn))
    return out
