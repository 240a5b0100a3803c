"""Per-module latency: ONNX Runtime's profile of the *optimized* graph, mapped back to modules.

ORT profiles the nodes of the graph it optimized: fused nodes get new names and no metadata.
ORT saves that graph (``optimized_model_filepath``) for the same session, and its nodes are placed:

- a node with the name, op type and outputs of an exported node is that node: its module;
- any other node stands for the exported nodes that made its *anchors* (its outputs that are
  values of the exported graph, and the exported node or value its name is made from: ORT names
  fusions ``node_MatMul_7/MatMulAddFusion``, ``relu_3_nchwc``, ``fused node_Gemm_9``) and, walking
  the exported graph back from them, the nodes whose values fed only nodes already found (a value
  used elsewhere too was a real tensor, made by some other kernel). Its time goes to their module,
  or to the common ancestor of their modules when a fusion spans several (Conv, BatchNorm and ReLU
  fused into one kernel count for the block holding all three; a SkipLayerNormalization with
  BertOutput's residual Add for BertOutput): splitting a fused kernel's time by node counts would
  be a guess;
- a node that replaced nothing (the Reshapes ORT wraps a Gemm in, layout reorders) works for the
  nodes it feeds: their module, else that of the nodes feeding it. What is still unplaced is
  ``unattributed_ms``.
"""
from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pandas as pd

from . import runtime
from .errors import InputError
from .hierarchy import NameTree
from .loading import tables
from .placement import place
from .reference import Reference
from .runtime import OnnxModel
from .tagging import MODULE_KEY

LATENCY_COLUMNS = ["module", "module_class", "nodes", "self_ms", "total_ms", "share"]
_KERNEL = "_kernel_time"


def place_optimized_nodes(original: onnx.ModelProto, optimized: onnx.ModelProto,
                          absorbed: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """For every optimized node that can be placed (``placement.place``): its module, and the
    exported node that carries its time in per-node views (itself when unchanged; for a fusion, the
    first in graph order of the exported nodes it stands for, e.g. the Conv of Conv+BatchNorm+ReLU;
    for a helper node, the carrier of the node it works for). ``absorbed``, when given, is filled with
    each exported node that kept its place or went into a fusion: the optimized node doing its work."""
    absorbed = {} if absorbed is None else absorbed
    placements = place(ir.serde.deserialize_model(original), ir.serde.deserialize_model(optimized))
    placed, carrier = {}, {}
    for node, p in placements.items():
        if p.carrier is not None:
            placed[node.name] = p.module
            carrier[node.name] = p.carrier.name
    for carried in (True, False):  # a surviving node does its own work, before any fusion claims it
        for node, p in placements.items():
            if (p.rule == "carried") == carried:
                for source in p.replaced:
                    absorbed.setdefault(source.name, node.name)
    return placed, carrier


def fused_into(original: onnx.ModelProto, absorbed: dict[str, str], placed: dict[str, str],
               timed) -> dict[str, dict[str, int]]:
    """Per module: the modules on which the timed kernels doing its nodes' work were placed, other
    than itself, with how many of its nodes each took ({module: {kernel's module: nodes}})."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for n in original.graph.node:
        module = dict((p.key, p.value) for p in n.metadata_props).get(MODULE_KEY)
        kernel = absorbed.get(n.name)
        if module is None or kernel not in timed or placed.get(kernel) in (None, module):
            continue
        out[module][placed[kernel]] += 1
    return out


def kernel_times(profile: list[dict], warmup: int) -> tuple[dict[str, float], dict[str, str], int]:
    """Per node of the optimized graph: its kernel µs per run (the median over the measured runs:
    on a shared machine the OS preempts a kernel now and then, and one such run would otherwise
    count for 20), its op type; and the number of measured runs."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in profile if e.get("cat") == "Session" and e.get("name") == "model_run")
    measured = runs[warmup:]
    starts = [a for a, _ in measured]
    per_run: dict[str, np.ndarray] = {}
    op: dict[str, str] = {}
    for e in profile:
        if e.get("cat") != "Node" or not e.get("name", "").endswith(_KERNEL):
            continue
        i = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if i < 0 or e["ts"] > measured[i][1]:
            continue  # a warm-up run
        name = e["name"][: -len(_KERNEL)]
        if name not in per_run:
            per_run[name] = np.zeros(len(measured))
            op[name] = e.get("args", {}).get("op_name", "")
        per_run[name][i] += float(e["dur"])
    return {k: float(np.median(v)) for k, v in per_run.items()}, op, len(measured)


def profile(model, reference: Reference | None = None, *, inputs=None, modules: pd.DataFrame | None = None,
            runs: int = 20, warmup: int = 3, optimization: str = "all", threads: int | None = None) -> pd.DataFrame:
    """Kernel time per module of ``model`` (an ``onnx_ir.Model``, a path or an ``OnnxModel``) in ONNX
    Runtime (CPU), from ORT's profiler, warm-up runs excluded; modules read from the graph's
    ``hierx.module`` tags. Fed ``inputs`` (an ``--inputs`` SPEC or {name: array}, checked against the
    graph: ``InputMismatch``), else the ``reference``'s inputs, else inputs made from the graph's
    input types. ``modules``: the module table to report on (default: the tree the tags imply).

    Returns ``LATENCY_COLUMNS`` and ``fused_into`` (see ``ExportResult.profile``); attrs ``kernel_ms``,
    ``unattributed_ms``, ``by_op_type``, ``runs``, ``kernels``, ``by_node``. ``StructureOnly`` for a
    structure-only model.
    """
    model = OnnxModel.of(model)
    runtime.require_weights(model, "profile")
    if runs < 1 or warmup < 0:
        raise InputError(f"runs must be at least 1 and warmup at least 0 (got runs={runs}, warmup={warmup})")
    with tempfile.TemporaryDirectory(prefix="hierx-profile-") as tmp:
        optimized_path = str(Path(tmp) / "optimized.onnx")
        with runtime.session(model, optimization=optimization, profile_prefix=str(Path(tmp) / "profile"),
                             optimized_path=optimized_path, threads=threads) as run:
            feeds = run.feeds(inputs, reference)
            for _ in range(warmup + runs):
                run.session.run(None, feeds)
            trace = json.loads(Path(run.session.end_profiling()).read_text())
        optimized = onnx.load(optimized_path, load_external_data=False)
    original = model.structure()
    absorbed: dict[str, str] = {}
    placed, carrier = place_optimized_nodes(original, optimized, absorbed)
    totals, ops, measured = kernel_times(trace, warmup)
    df = latency_frame(tables(model.ir).modules if modules is None else modules, placed, totals, ops, measured,
                       fused_into(original, absorbed, placed, totals))
    by_node: dict[str, float] = defaultdict(float)
    for name, us in totals.items():
        if name in carrier:
            by_node[carrier[name]] += us / 1000.0
    df.attrs["by_node"] = dict(by_node)
    return df


def latency_frame(modules: pd.DataFrame, placed: dict[str, str], totals: dict[str, float], ops: dict[str, str],
                  runs: int, fused: dict[str, dict[str, int]] | None = None) -> pd.DataFrame:
    """One row per module of ``modules`` (``LATENCY_COLUMNS``), ms per run; attrs
    ``kernel_ms``, ``unattributed_ms``, ``by_op_type``, ``runs``, ``kernels`` (``profile`` adds
    ``by_node``: ms per exported node that carries kernel time). With ``fused`` (``fused_into``'s
    answer) a ``fused_into`` column: for a module that owns nodes but got no kernel of its own
    because ORT fused them into a kernel placed on another module, that module (the one that took
    most of its nodes); for a module the exporter's optimizer folded into another's node (the
    modules table's ``folded_into``), that module; else None."""
    tree = NameTree(modules["module"].astype(str))
    self_us: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    unattributed = 0.0
    by_op: dict[str, float] = defaultdict(float)
    for name, us in totals.items():
        by_op[ops.get(name, "")] += us
        module = placed.get(name)
        if module is not None:
            module = tree.nearest(module)  # a module the tree does not list: its nearest listed ancestor
        if module is None:
            unattributed += us
        else:
            self_us[module] += us
            count[module] += 1
    total_us = tree.totals(self_us)
    kernel_us = sum(totals.values())
    per_run = 1000.0  # µs per run -> ms per run
    df = pd.DataFrame({
        "module": modules["module"].astype(str),
        "module_class": modules["module_class"],
        "nodes": [count.get(m, 0) for m in modules["module"]],
        "self_ms": [self_us.get(m, 0.0) / per_run for m in modules["module"]],
        "total_ms": [total_us.get(m, 0.0) / per_run for m in modules["module"]],
    })
    df["share"] = df["total_ms"] / (kernel_us / per_run) if kernel_us else 0.0
    if fused is not None:
        df["fused_into"] = [_fused_target(m, fused, count, tree) for m in df["module"]]
        if "folded_into" in modules:  # folded by the exporter's optimizer (hierx.fused): its work is there
            df["fused_into"] = [t if t is not None else (f or None) for t, f in zip(df["fused_into"], modules["folded_into"])]
    df.attrs["kernel_ms"] = kernel_us / per_run
    df.attrs["unattributed_ms"] = unattributed / per_run
    df.attrs["by_op_type"] = {k: v / per_run for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}
    df.attrs["runs"] = runs
    df.attrs["kernels"] = len(totals)
    return df


def _fused_target(module: str, fused: dict[str, dict[str, int]], count: dict[str, int], tree: NameTree) -> str | None:
    """Where ``module``'s work went when it has no kernel of its own: the listed module whose kernels
    took most of its nodes (ties: the first in name order)."""
    if count.get(module) or not fused.get(module):
        return None
    taken: dict[str, int] = defaultdict(int)
    for target, nodes in fused[module].items():
        target = tree.nearest(target)  # nearest listed ancestor, as for kernel time
        if target != module:
            taken[target] += nodes
    return min(taken, key=lambda t: (-taken[t], t)) if taken else None
