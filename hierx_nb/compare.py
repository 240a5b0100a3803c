"""``compare``: two files of one model (fp32 and fp16 or int8, a file and its optimized copy, two
exports) side by side, module by module: nodes, op changes, ONNX Runtime time and numeric error.

Time: each file profiled as ``profile()`` does (same inputs, same threads). Error: b's values at
each module's boundary (the values its nodes hand outside it, ``divergence.boundaries``) against
a's, on the same inputs; *own* error: b's module run on a's values at its inputs, so the error it
adds itself, not the one it inherits. Modules of one depth do not overlap, so one ORT run per depth
level gives every module's own error: in a copy of b, the uses inside each module of the values it
takes from outside are fed a's values instead.

Pairing a value of b with one of a: by name where it survives in both; else, among the module's
boundary values, by position within the values of one size. What cannot be paired is counted in
``note``, never guessed. Error is measured as SQNR (signal-to-quantization-noise ratio, dB: 20 log10
of ‖a‖ / ‖a − b‖, ``onnxruntime.quantization.qdq_loss_debug``'s measure; ``inf`` when equal).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import onnx_ir as ir
import pandas as pd
from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

from . import runtime
from .divergence import boundaries
from .errors import DifferentModels, ExportError, InputMismatch
from .hierarchy import ancestors, in_subtree
from .placement import place
from .profiling import profile
from .tagging import MODULE_KEY

COLUMNS = ["module", "module_class", "nodes_a", "nodes_b", "op_changes", "ms_a", "ms_b", "time_ratio",
           "max_abs_diff", "sqnr_db", "own_max_abs_diff", "own_sqnr_db", "note"]
# A module whose own SQNR falls below this is divergent. int8 quantization of a healthy layer keeps
# about 25-45 dB, fp16 about 60-80 dB, an ORT-optimized copy more (README, "Two files compared");
# a clipped weight, an outlier channel or a changed weight falls far below.
DEFAULT_SQNR_DB = 20.0
# Below this share of b's modules (with nodes) in a's tree, the files are two models.
MIN_SHARED_MODULES = 0.8


def compare_results(ra, rb, *, inputs=None, runs: int = 20, warmup: int = 3, threads: int | None = None,
                    sqnr_db: float = DEFAULT_SQNR_DB) -> pd.DataFrame:
    """``hierx_nb.compare`` on two tagged results (``ra``: a, ``rb``: b, both tagged): see it for the
    columns, attrs and errors."""
    ma, mb = ra.onnx().ir, rb.onnx().ir
    _check_same_model(ra, rb)
    fa, fb = _feeds(ra, rb, inputs)
    lat_a = profile(ra.onnx(), inputs=fa, modules=ra.modules, runs=runs, warmup=warmup, threads=threads)
    lat_b = profile(rb.onnx(), inputs=fb, modules=rb.modules, runs=runs, warmup=warmup, threads=threads)

    outs_a, ins_a = boundaries(ma)
    outs_b, ins_b = boundaries(mb)
    got_a = _run(ra, fa, [v for vs in (*outs_a.values(), *ins_a.values()) for v in vs])
    got_b = _run(rb, fb, [v for vs in outs_b.values() for v in vs])
    own_b = _own_runs(rb, fb, outs_b, ins_b, ins_a, got_a)

    order, finish = _orders(ma)
    classes = dict(zip(ra.modules["module"].astype(str), ra.modules["module_class"].astype(str)))
    total_a = dict(zip(ra.modules["module"].astype(str), ra.modules["total_nodes"]))
    total_b = dict(zip(rb.modules["module"].astype(str), rb.modules["total_nodes"]))
    ms_a = dict(zip(lat_a["module"], lat_a["total_ms"]))
    ms_b = dict(zip(lat_b["module"], lat_b["total_ms"]))
    changes = op_changes(ma, mb)
    rows = []
    for m in order:
        full, unpaired = _pairs(outs_b.get(m, []), outs_a.get(m, []), got_b, got_a)
        own, own_unpaired = (_pairs(outs_b.get(m, []), outs_a.get(m, []), own_b[m], got_a) if m in own_b else ([], None))
        notes = []
        if unpaired:
            notes.append(f"{unpaired} output(s) not paired")
        if m not in own_b and m in outs_b:
            notes.append("own error not measured: an input not paired with a's")
        t_a, t_b = ms_a.get(m, 0.0), ms_b.get(m, 0.0)
        rows.append([m, classes.get(m, ""), int(total_a.get(m, 0)), int(total_b.get(m, 0)), changes.get(m, ""),
                     t_a, t_b, t_b / t_a if t_a else np.nan, *_error(full), *_error(own), "; ".join(notes)])
    df = pd.DataFrame(rows, columns=COLUMNS)
    own_sqnr = dict(zip(df["module"], df["own_sqnr_db"]))
    df.attrs["first_divergent"] = next((m for m in finish if m in own_sqnr and own_sqnr[m] < sqnr_db), None)
    df.attrs["sqnr_threshold_db"] = sqnr_db
    for side, lat in (("a", lat_a), ("b", lat_b)):
        df.attrs[f"kernel_ms_{side}"] = lat.attrs["kernel_ms"]
        df.attrs[f"unattributed_ms_{side}"] = lat.attrs["unattributed_ms"]
    return df


def sqnr(want: np.ndarray, got: np.ndarray) -> float:
    """SQNR in dB of ``got`` against ``want`` (ORT's measure); ``inf`` when they are equal."""
    if np.array_equal(want, got):
        return math.inf
    return float(compute_signal_to_quantization_noice_ratio(want.reshape(-1), got.reshape(-1)))


def _error(pairs) -> tuple[float, float]:
    if not pairs:
        return np.nan, np.nan
    want = np.concatenate([a.reshape(-1) for a, _ in pairs]).astype(np.float64)
    got = np.concatenate([b.reshape(-1) for _, b in pairs]).astype(np.float64)
    finite = np.isfinite(want) & np.isfinite(got)
    same = (want == got) | (np.isnan(want) & np.isnan(got))
    if not finite.all() and not same[~finite].all():
        return math.inf, -math.inf  # a NaN or infinity where a has a finite value (fp16 overflow)
    want, got = want[finite], got[finite]
    return (float(np.abs(want - got).max()) if want.size else 0.0), (sqnr(want, got) if want.size else math.inf)


def _check_same_model(ra, rb) -> None:
    known = set(ra.modules["module"].astype(str))
    theirs = set(rb.nodes["module"].dropna().astype(str))
    shared = len(theirs & known) / len(theirs) if theirs else 0.0
    if shared < MIN_SHARED_MODULES:
        raise DifferentModels(f"a and b are not the same model: only {shared:.0%} of b's modules are modules of a",
                              hint="compare two files of one model")


def _input_dtypes(session) -> dict[str, np.dtype]:
    names = {"float": np.float32, "float16": np.float16, "double": np.float64}
    return {i.name: names.get(i.type[len("tensor("):-1]) for i in session.get_inputs()}


def _feeds(ra, rb, inputs) -> tuple[dict, dict]:
    """The same inputs for both files: a's by name, and b's (floats cast to b's input dtypes).
    ``InputMismatch`` when they do not fit one of them."""
    with runtime.session(ra.onnx(), optimization="none") as sa:
        try:
            fa = sa.feeds(inputs, ra.reference)
            sa.run(fa)
        except ExportError as e:  # InputMismatch (the inputs named or shaped for another graph), or ORT's own message
            raise InputMismatch(f"the inputs do not fit a: {e.message}") from None
    with runtime.session(rb.onnx(), optimization="none") as sb:
        dtypes = _input_dtypes(sb.session)
        try:
            fb = runtime.match_inputs(sb.inputs, list(fa.items()))
            fb = {k: v.astype(dtypes[k]) if dtypes.get(k) is not None and v.dtype.kind == "f" else v for k, v in fb.items()}
            sb.run(fb)
        except ExportError as e:
            raise InputMismatch(f"the inputs fit a but not b: {e.message}") from None
    return fa, fb


def _run(result, feeds: dict, values: list[ir.Value], extra_feeds: dict | None = None) -> dict[str, np.ndarray]:
    """Every value of ``values`` (and the graph outputs) by name, from one ORT run."""
    values = list(dict.fromkeys(v for v in values if not v.is_graph_input()))
    with runtime.session(result.onnx(), extra_outputs=values) as run:
        named = list(feeds.items()) + list((extra_feeds or {}).items()) + run.weights
        got = run.run(runtime.match_inputs(run.session.get_inputs(), named))
    got.update(feeds)
    return got


def _pairs(values_b, values_a, got_b, got_a):
    """``([(a's array, b's array)], unpaired)``: by name, then by position among values of one size."""
    pairs, rest_b = [], []
    names_a = {v.name for v in values_a}
    for v in values_b:
        if v.name in got_b and v.name in names_a and v.name in got_a and _kind(got_a[v.name]) == _kind(got_b[v.name]):
            pairs.append((got_a[v.name], got_b[v.name]))
        elif v.name in got_b:
            rest_b.append(got_b[v.name])
    taken = {v.name for v in values_b}
    rest_a = [got_a[v.name] for v in values_a if v.name not in taken and v.name in got_a]
    groups: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
    for arr in rest_b:
        groups[arr.size, _kind(arr)][1].append(arr)
    for arr in rest_a:
        groups[arr.size, _kind(arr)][0].append(arr)
    unpaired = 0
    for ours, theirs in groups.values():
        if ours and len(ours) == len(theirs):
            pairs += [(x, y.reshape(x.shape) if y.size == x.size else y) for x, y in zip(ours, theirs)]
        else:
            unpaired += len(theirs)
    return pairs, unpaired


def _kind(arr: np.ndarray) -> str:
    """fp16 and fp32 values pair; a float never pairs with a quantized integer."""
    return "f" if arr.dtype.kind == "f" else str(arr.dtype)


def _own_runs(rb, fb: dict, outs_b, ins_b, ins_a, got_a) -> dict[str, dict[str, np.ndarray]]:
    """Per module of b: its boundary outputs computed from a's values at its inputs (one run per depth)."""
    model = rb.onnx().ir
    graph = model.graph
    by_depth: dict[int, list[str]] = defaultdict(list)
    for m in outs_b:
        by_depth[0 if m == "" else m.count(".") + 1].append(m)
    own: dict[str, dict[str, np.ndarray]] = {}
    for depth in sorted(by_depth):
        modules, extra_feeds, rewired, added = [], {}, [], {}
        for m in by_depth[depth]:
            values = [v for v in ins_b.get(m, []) if not v.is_graph_input()]
            found = {v: got_a[v.name] for v in values if v.name in got_a and v.dtype is not None
                     and v.dtype.is_floating_point() == (got_a[v.name].dtype.kind == "f")}
            names = {v.name for v in values}
            rest_a: dict[int, list] = defaultdict(list)
            for v in ins_a.get(m, []):
                if v.name in got_a and v.name not in names and got_a[v.name].dtype.kind == "f":
                    rest_a[got_a[v.name].size].append(got_a[v.name])
            left: dict[int | None, list] = defaultdict(list)
            for v in values:
                if v not in found:
                    left[_size(v) if v.dtype is not None and v.dtype.is_floating_point() else None].append(v)
            for size, vs in left.items():  # by position among a's inputs of one size
                if size is not None and len(rest_a.get(size, [])) == len(vs):
                    found.update({v: arr.reshape([int(d) for d in v.shape]) for v, arr in zip(vs, rest_a[size])})
            if len(found) < len(values):
                continue
            modules.append(m)
            for v, arr in found.items():
                if v not in added:
                    new = ir.Value(name=f"{v.name}__from_a", shape=v.shape, type=v.type)
                    added[v] = new
                    dtype = v.dtype.numpy() if v.dtype is not None else arr.dtype
                    extra_feeds[new.name] = np.asarray(arr).astype(dtype)
                for use in list(v.uses()):
                    other = use.node.metadata_props.get(MODULE_KEY)
                    if other is not None and in_subtree(other, m):
                        rewired.append((use.node, use.idx, v))
                        use.node.replace_input_with(use.idx, added[v])
        if not modules:
            continue
        graph.inputs.extend(added.values())
        try:
            got = _run(rb, fb, [v for m in modules for v in outs_b[m]], extra_feeds)
        finally:
            for node, idx, v in rewired:
                node.replace_input_with(idx, v)
            for _ in added:
                graph.inputs.pop()
        for m in modules:
            own[m] = got
    return own


def _size(v: ir.Value) -> int | None:
    if v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return int(np.prod([int(d) for d in v.shape]))


def _orders(model: ir.Model) -> tuple[list[str], list[str]]:
    """Modules in the order they start (first node, with their ancestors before them) and finish (last node)."""
    start: dict[str, None] = {}
    last: dict[str, int] = {}
    for i, node in enumerate(model.graph):
        m = node.metadata_props.get(MODULE_KEY)
        if m is None:
            continue
        for a in reversed(ancestors(m)):
            start.setdefault(a, None)
            last[a] = i
    return list(start), sorted(last, key=lambda m: (last[m], -m.count(".") if m else 1))


def op_changes(ma: ir.Model, mb: ir.Model) -> dict[str, str]:
    """Per module (b's tags): how its own nodes changed from a, e.g. ``MatMul→MatMulInteger ×3,
    +DynamicQuantizeLinear ×1, −Add ×3``: a node of b standing for a's nodes of other op types
    (``placement``), nodes b added, a's nodes nothing in b does."""
    placements = place(ma, mb)
    changed: dict[str, Counter] = defaultdict(Counter)
    done = set()
    for node, p in placements.items():
        module = node.metadata_props.get(MODULE_KEY, p.module)
        done.update(p.replaced)
        if p.rule == "carried":
            continue
        if p.replaced:
            ops = "+".join(dict.fromkeys(r.op_type for r in p.replaced))
            if ops != node.op_type:
                changed[module][f"{ops}→{node.op_type}"] += 1
        else:
            changed[module][f"+{node.op_type}"] += 1
    for node in ma.graph:
        if node not in done and node.op_type not in ("Constant",):
            changed[node.metadata_props.get(MODULE_KEY, "")][f"−{node.op_type}"] += 1
    return {m: ", ".join(f"{k} ×{n}" for k, n in c.most_common()) for m, c in changed.items()}

