"""Per-module numeric divergence: each module's outputs in ONNX Runtime against PyTorch's.

PyTorch side: forward hooks record every module's input and output tensors. ONNX side: a module's
*outputs* are the values its subtree's nodes produce and hand outside it (to a node of another
module, or as a graph output); its *inputs* the values its nodes take from outside (weights and
constants excluded). All of them are exposed as extra outputs of a copy of the graph and computed
in one ONNX Runtime run.

Pairing rule: a module's PyTorch tensors (over all its calls, in call order; outputs that are its
own inputs passed through left out) and its ONNX values (in graph order) are grouped by shape and
dtype; in a group with as many ONNX values as PyTorch tensors they pair in order. A group that
does not balance is not paired — never guessed — and the row's ``note`` says so. A module whose
node also computes modules an optimizer folded into it (``hierx.fused``: BatchNorm into the Conv)
is compared with the last folded module's outputs; the folded module's row says where it went.

The first divergent module is, in the order modules finish, the first whose paired outputs
differ beyond tolerance while none of its inputs does (paired PyTorch inputs, and ONNX values
already found to differ as another module's outputs): a changed weight or attribute is blamed on
its module, not on the modules downstream of it, and a child finishes before its parent.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx_ir as ir
import pandas as pd
import torch

from . import runtime
from .comparison import compare, tolerance
from .hierarchy import ancestors
from .inputs import tensor_leaves
from .reference import Reference, to_numpy
from .runtime import OnnxModel
from .tagging import MODULE_KEY, fused_modules

COLUMNS = ["module", "module_class", "outputs", "max_abs_diff", "max_rel_diff", "ok", "inputs_ok", "note"]


def _outside(module: str, other: str | None) -> list[str]:
    """The modules among ``module`` and its ancestors whose subtree does not hold ``other``
    (None: outside the model, as graph inputs and outputs are)."""
    if other is None:
        return ancestors(module)
    theirs = set(ancestors(other))
    return [a for a in ancestors(module) if a not in theirs]


def _module_of(node: ir.Node) -> str | None:
    return node.metadata_props.get(MODULE_KEY)


def boundaries(model: ir.Model) -> tuple[dict[str, list[ir.Value]], dict[str, list[ir.Value]]]:
    """Per module (qualified name): the values its subtree hands outside, and takes from outside,
    in graph order (top-level graph; a node holding subgraphs counts as one node)."""
    outputs: dict[str, dict[ir.Value, None]] = defaultdict(dict)
    inputs: dict[str, dict[ir.Value, None]] = defaultdict(dict)
    for node in model.graph:
        module = _module_of(node)
        if module is None:
            continue
        for value in node.outputs:
            if not value.name:
                continue
            owners = set(_outside(module, None)) if value.is_graph_output() else set()
            for use in value.uses():
                owners.update(_outside(module, _module_of(use.node) or ""))
            for owner in owners:
                outputs[owner][value] = None
        for value in node.inputs:
            if value is None or value.is_initializer() or value.const_value is not None:
                continue
            producer = value.producer()
            if producer is None:
                if not value.is_graph_input():
                    continue  # an outer-scope value (inside a function body)
                owners = _outside(module, None)
            elif producer.op_type == "Constant":
                continue
            else:
                owners = _outside(module, _module_of(producer) or "")
            for owner in owners:
                inputs[owner][value] = None
    return {k: list(v) for k, v in outputs.items()}, {k: list(v) for k, v in inputs.items()}


class _Recorder:
    """Forward hooks on every module: input and output tensors per call, call and finish order."""

    def __init__(self, model: torch.nn.Module):
        self.inputs: dict[str, list[tuple[np.ndarray, str]]] = defaultdict(list)
        self.outputs: dict[str, list[tuple[np.ndarray, str]]] = defaultdict(list)
        self.called: dict[str, None] = {}
        self.finished: dict[str, None] = {}
        self.classes: dict[str, str] = {}
        self._seen: dict[str, list[set[int]]] = defaultdict(list)
        self._hooks = []
        for name, module in model.named_modules():
            self.classes[name] = type(module).__name__
            self._hooks.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            self._hooks.append(module.register_forward_hook(self._post(name), with_kwargs=True))

    def _pre(self, name):
        def hook(module, args, kwargs):
            self.called.setdefault(name, None)
            leaves = tensor_leaves((args, kwargs))
            self._seen[name].append({id(t) for t in leaves})
            self.inputs[name] += [(to_numpy(t), str(t.dtype)) for t in leaves]
        return hook

    def _post(self, name):
        def hook(module, args, kwargs, output):
            self.finished.setdefault(name, None)
            passed = self._seen[name].pop() if self._seen[name] else set()
            # An input handed back unchanged (a residual, a mask) is no value this module made.
            self.outputs[name] += [(to_numpy(t), str(t.dtype)) for t in tensor_leaves(output) if id(t) not in passed]
        return hook

    def remove(self):
        for h in self._hooks:
            h.remove()


def pair(tensors: list[tuple[np.ndarray, str]], values: list[ir.Value], got: dict[str, np.ndarray]):
    """``(pairs, unpaired)``: ``(value name, ONNX array, PyTorch array, torch dtype)`` for each
    PyTorch tensor paired by the rule above, and how many PyTorch tensors could not be paired."""
    groups: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
    for arr, dtype in tensors:
        groups[(arr.shape, arr.dtype.str)][0].append((arr, dtype))
    for value in values:
        arr = got.get(value.name)
        if arr is not None:
            groups[(arr.shape, arr.dtype.str)][1].append((value.name, arr))
    pairs, unpaired = [], 0
    for theirs, ours in groups.values():
        if theirs and len(theirs) == len(ours):
            pairs += [(name, o, t, dtype) for (name, o), (t, dtype) in zip(ours, theirs)]
        else:
            unpaired += len(theirs)
    return pairs, unpaired


def _folded(pairings) -> set[str]:
    """ONNX values paired with PyTorch tensors that differ from each other: an optimizer folded one
    module into its neighbour (BatchNorm into Conv), so the value is no one module's output."""
    seen: dict[str, np.ndarray] = {}
    folded = set()
    for pairs in pairings:
        for name, _, torch_arr, _ in pairs:
            first = seen.setdefault(name, torch_arr)
            if first is not torch_arr and not np.array_equal(first, torch_arr, equal_nan=torch_arr.dtype.kind == "f"):
                folded.add(name)
    return folded


def compare_modules(model: OnnxModel, ref: Reference, atol: float | None = None, rtol: float | None = None) -> pd.DataFrame:
    """One row per executed module in call order (``COLUMNS``); ``attrs["first_divergent"]``.
    Modules are read from the graph's ``hierx.module`` tags: any tagged file will do."""
    outs, ins = boundaries(model.ir)
    extra = list(dict.fromkeys(v for vs in (*outs.values(), *ins.values()) for v in vs if not v.is_graph_input()))
    recorder = _Recorder(ref.model)
    try:
        with ref.evaluating():
            ref.model(*ref.args, **ref.kwargs)
    finally:
        recorder.remove()
    with runtime.session(model, extra_outputs=extra) as run:
        feeds = run.feeds(reference=ref)
        got = run.run(feeds)
    got.update(feeds)  # graph inputs: their ONNX value is what was fed

    def diff(pairs):
        worst_abs = worst_rel = 0.0
        bad = set()
        for name, onnx_arr, torch_arr, dtype in pairs:
            a, r = tolerance(dtype, atol, rtol)
            d_abs, d_rel, good = compare(onnx_arr, torch_arr, a, r)
            worst_abs, worst_rel = max(worst_abs, d_abs), max(worst_rel, d_rel)
            if not good:
                bad.add(name)
        return worst_abs, worst_rel, not bad, bad

    # A node computing a module and the modules folded into it (hierx.fused) outputs what the last of
    # those returned: the Conv's value is its BatchNorm's output; the BatchNorm has no value of its own.
    folded_into: dict[str, str] = {}
    computed_by: dict[str, str] = {}
    for node in model.ir.graph:
        fused = fused_modules(node.metadata_props)
        if fused:
            folded_into.update(dict.fromkeys(fused, _module_of(node) or ""))
            computed_by[_module_of(node) or ""] = fused[-1]
    out_pairs, in_pairs, unpaired = {}, {}, {}
    for name in recorder.called:
        if name in folded_into:
            out_pairs[name], unpaired[name] = [], 0
            in_pairs[name] = []
            continue
        theirs = recorder.outputs.get(computed_by.get(name, name), [])
        out_pairs[name], unpaired[name] = pair(theirs, outs.get(name, []), got)
        in_pairs[name], _ = pair(recorder.inputs.get(name, []), ins.get(name, []), got)
    folded = _folded([*out_pairs.values(), *in_pairs.values()])

    rows, bad_values, per_module = [], set(), {}
    for name in recorder.called:
        pairs = [p for p in out_pairs[name] if p[0] not in folded]
        if not pairs:
            if name in folded_into:
                note = f"folded into {folded_into[name]!r} by an optimizer: compared there"
            elif name not in outs and name not in ins:
                note = "no ONNX node of its own or below it"
            elif out_pairs[name]:
                note = "its ONNX values also hold a neighbour's work (folded by an optimizer): not paired"
            else:
                note = "outputs not paired: no ONNX value of the same shape and dtype, or several candidates"
            rows.append([name, recorder.classes[name], 0, np.nan, np.nan, None, None, note])
            continue
        d_abs, d_rel, ok, bad = diff(pairs)
        bad_values |= bad
        missing = unpaired[name] + len(out_pairs[name]) - len(pairs)
        note = f"{missing} output(s) not paired" if missing else ""
        if name in computed_by:
            note = "; ".join(filter(None, [note, f"with {computed_by[name]!r} folded in: compared with its output"]))
        rows.append([name, recorder.classes[name], len(pairs), d_abs, d_rel, ok, None, note])
        per_module[name] = rows[-1]
    for name, row in per_module.items():
        *_, in_ok, _ = diff([p for p in in_pairs[name] if p[0] not in folded])
        row[6] = in_ok and not any(v.name in bad_values for v in ins.get(name, []))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["ok"] = df["ok"].astype(object)
    df["inputs_ok"] = df["inputs_ok"].astype(object)
    first = next((n for n in recorder.finished if n in per_module and per_module[n][5] is False and per_module[n][6]),
                 None)
    df.attrs["first_divergent"] = first
    return df
