"""ExportResult: the tagged ONNX model, its mapping tables and the attempts that made it."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import compare as comparing
from . import display, extraction, loading, model_explorer, profiling, validation
from . import retag as retagging
from .errors import Attempt, DifferentModels, Mismatch, NotMadeFrom, NotTagged, UnknownModule
from .files import check_output
from .graph_io import IO_COLUMNS, describe_io
from .hierarchy import subtree_mask
from .reference import Reference
from .runtime import OnnxModel
from .sidecar import update_metrics
from .tables import COVERAGE_COLUMNS, MODULE_COLUMNS, NODE_COLUMNS

__all__ = ["ExportResult", "load", "retag", "compare", "result_of", "NODE_COLUMNS", "MODULE_COLUMNS", "COVERAGE_COLUMNS"]

@dataclass
class ExportResult:
    """What ``hierx_nb.export`` or ``hierx_nb.load`` returns.

    ``nodes``: one row per ONNX node (``NODE_COLUMNS``); ``modules``: one row per module of the
    model, executed or not (``MODULE_COLUMNS``); ``coverage``: one row per ONNX op type
    (``COVERAGE_COLUMNS``: node counts by source, ``pct`` the known share); ``coverage_pct`` the
    share of all nodes whose module is known — source ``exact`` or ``pattern``, not ``inferred``;
    ``io``: the graph's inputs then outputs (``IO_COLUMNS``: kind, name, dtype, shape as a list of
    ints and dynamic-axis names).
    """

    model_class: str
    strategy: str
    attempts: list[Attempt]
    nodes: pd.DataFrame
    modules: pd.DataFrame
    coverage: pd.DataFrame
    coverage_pct: float
    seconds: float
    onnx_path: Path | None = None
    sidecar_path: Path | None = None
    structure_only: bool = False
    onnx_model: Any = None  # onnx_ir.Model, tagged; None for a result loaded without its graph
    reference: Any = field(default=None, repr=False)  # set by export(): the model and inputs to validate against
    # Problems that still let a file out (outputs that differ from PyTorch's, checks skipped): plain strings.
    warnings: list[str] = field(default_factory=list)
    # Whether export ran the file in ONNX Runtime against PyTorch's outputs (check=True): False when
    # check=False, structure-only, or not checked (a warning says why); None for a loaded result.
    checked: bool | None = None
    # Per-module answers, filled by profile() and validate(per_module=True); None until asked for.
    # latency: module, module_class, nodes, self_ms, total_ms, share (attrs kernel_ms, unattributed_ms).
    # divergence: module, module_class, outputs, max_abs_diff, max_rel_diff, ok (attrs first_divergent).
    latency: pd.DataFrame | None = None
    divergence: pd.DataFrame | None = None
    # compare(): this file against another, module by module (hierx_nb.compare's frame); None until asked for.
    comparison: pd.DataFrame | None = None
    # The graph's inputs and outputs (graph_io.io_frame): kind, name, dtype, shape (named dynamic axes).
    io: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=IO_COLUMNS))
    _widget: Any = field(default=None, repr=False)
    _onnx: OnnxModel | None = field(default=None, repr=False)

    def onnx(self) -> OnnxModel:
        """The model the answers run on: the file (``onnx_path``) and/or the graph in memory (``onnx_model``)."""
        if self._onnx is None or self._onnx.path != self.onnx_path or (
                self.onnx_model is not None and self._onnx._model is not self.onnx_model):
            self._onnx = OnnxModel(self.onnx_path, self.onnx_model)
        return self._onnx

    # -- tables -------------------------------------------------------------------------------
    def mapping(self, module: str = "") -> pd.DataFrame:
        """The nodes of ``module``'s subtree (``""`` is the whole model); ``UnknownModule`` (a
        ``KeyError``) for a name the model does not have."""
        self.check_module(module)
        return self.nodes[subtree_mask(self.nodes["module"], module)].reset_index(drop=True)

    def check_module(self, module: str) -> None:
        """``UnknownModule`` (with "did you mean") unless ``module`` is one of this model's qualified
        names or ``""`` (the whole model)."""
        names = self.modules["module"].astype(str)
        if module and module not in set(names):
            raise UnknownModule.of(module, names, file=self.onnx_path)

    @property
    def selection(self) -> pd.DataFrame:
        """The nodes of the module selected in the widget (the whole model if none)."""
        selected = self._widget.selected if self._widget is not None else ""
        return self.mapping(selected)

    # -- validation ---------------------------------------------------------------------------
    def validate(self, model=None, args=None, kwargs: dict | None = None, *, per_module: bool = False,
                 atol: float | None = None, rtol: float | None = None, raise_on_mismatch: bool = True) -> pd.DataFrame:
        """Run the ONNX model in ONNX Runtime (CPU) and compare it with PyTorch.

        Against the export's own model and inputs, or ``model`` with ``args``/``kwargs`` (needed for a
        result of ``hierx_nb.load``; an HF model without inputs gets them from its config).
        ``atol``/``rtol`` default by dtype (fp32 1e-4/1e-3, fp16 1e-2/1e-2, bf16 5e-2/5e-2).

        Returns one row per output: ``output, shape, max_abs_diff, max_rel_diff, ok``; with
        ``per_module`` one row per executed module (``module, module_class, outputs, max_abs_diff,
        max_rel_diff, ok, inputs_ok, note``) with ``attrs["first_divergent"]``, also kept as
        ``self.divergence``. Raises ``Mismatch`` when ``raise_on_mismatch``; ``StructureOnly`` or
        ``NoReference`` when there is nothing to run or compare with; ``ExportError`` when the model cannot be run.
        """
        report = validation.validate(self.onnx(), self._reference_for(model, args, kwargs), per_module=per_module,
                                     atol=atol, rtol=rtol)
        if not per_module:
            if raise_on_mismatch and not report["ok"].all():
                raise Mismatch(validation.mismatch_line(report), hint="see every output: result.validate(raise_on_mismatch=False)")
            return report
        self.divergence = report
        self._metrics_changed()
        first = report.attrs["first_divergent"]
        if raise_on_mismatch and first is not None:
            raise Mismatch(f"module {first!r} is the first whose ONNX outputs differ from PyTorch's",
                           hint="see every module: result.divergence")
        return report

    def _reference_for(self, model, args, kwargs) -> Reference | None:
        """The export's own reference, or ``model`` (default: the export's) on ``args``/``kwargs``."""
        if model is None and args is None and kwargs is None:
            return self.reference
        model = model if model is not None else getattr(self.reference, "model", None)
        if model is None:
            return None
        return Reference.of(model, args, kwargs)

    # -- module subgraphs ----------------------------------------------------------------------
    def extract(self, module: str, output, model=None, args=None, kwargs=None) -> ExportResult:
        """Write ``module``'s subtree as a runnable ONNX model to ``output`` and return it (loaded).

        Its inputs are the values the module's nodes take from outside, its outputs those they hand
        outside or return; the weights they read come along (external data when large), tags kept.
        With a PyTorch model (the export's, or ``model`` with ``args``/``kwargs``) its inputs are named
        and its outputs ordered like the module's forward, and ``piece.validate()`` compares it with
        the module's own forward on the inputs it received in that model's run.
        """
        self.check_module(module)
        piece = extraction.extract(self.onnx(), module, output, self._reference_for(model, args, kwargs))
        loaded = load(piece.path)
        loaded.reference = piece.reference
        loaded.warnings += piece.warnings
        return loaded

    # -- latency ------------------------------------------------------------------------------
    def profile(self, runs: int = 20, warmup: int = 3, optimization: str = "all", threads: int | None = None,
                inputs=None) -> pd.DataFrame:
        """Kernel time per module in ONNX Runtime (CPU), with ORT's profiler, warm-up runs excluded.

        ``optimization``: ``all`` (ORT's default), ``extended``, ``basic`` or ``none``. Inputs: the
        export's own, else ``inputs`` (an ``--inputs`` SPEC string or {name: array}), else made from
        the graph's input types. Returns one row per module: ``module, module_class, nodes`` (kernels
        of the optimized graph it owns), ``self_ms``, ``total_ms`` (its subtree), ``share`` (of all
        kernel time), in ms per run; ``attrs``: ``kernel_ms``, ``unattributed_ms`` (self_ms sums
        with it to kernel_ms), ``by_op_type`` ({op type: ms}). Also kept as ``self.latency``.
        """
        self.latency = profiling.profile(self.onnx(), self.reference, inputs=inputs, modules=self.modules, runs=runs,
                                         warmup=warmup, optimization=optimization, threads=threads)
        self._metrics_changed()
        return self.latency

    def model_explorer_overlay(self, metric: str, path) -> dict:
        """Write Google Model Explorer node data for ``metric`` (``latency`` or ``divergence``) to
        ``path`` (JSON keyed by node name: load it in Model Explorer's "node data" panel); returns it."""
        return model_explorer.write_overlay(self, metric, path)

    def _metrics_changed(self) -> None:
        """Call after ``latency``, ``divergence`` or ``warnings`` change: the sidecar keeps the measured
        frames (so ``load()`` and reports carry them) and an explorer on screen follows."""
        if self.sidecar_path is not None and Path(self.sidecar_path).is_file():
            try:
                update_metrics(Path(self.sidecar_path), latency=self.latency, divergence=self.divergence)
            except (OSError, ValueError) as e:  # the answer stands in memory; saying so is enough
                self.warnings.append(f"not saved in the sidecar {str(self.sidecar_path)!r}: {e}")
        if self._widget is not None:
            self._widget.refresh_metrics(self)

    # -- display ------------------------------------------------------------------------------
    @property
    def widget(self):
        """The anywidget explorer for this result (needs the ``notebook`` extra)."""
        if self._widget is None:
            self._widget = display.view("widget")(self)
        return self._widget

    def to_html(self, path, selected: str = "") -> Path:
        """Write the explorer as one self-contained HTML file: it opens from disk, without kernel or network.
        ``selected``: the module shown selected (``UnknownModule`` for a name the model does not have)."""
        self.check_module(selected)
        return display.view("to_html")(self, path, selected)

    def compare(self, other, *, inputs=None, runs: int = 20, warmup: int = 3, threads: int | None = None,
                sqnr_db: float | None = None) -> pd.DataFrame:
        """This file (a) against ``other`` (b: a tagged file or result, or an untagged file made from
        this one), module by module: ``hierx_nb.compare(self, other, ...)``. Also kept as
        ``self.comparison`` (``figure("compare")``)."""
        self.comparison = compare(self, other, inputs=inputs, runs=runs, warmup=warmup, threads=threads,
                                  sqnr_db=comparing.DEFAULT_SQNR_DB if sqnr_db is None else sqnr_db)
        self._metrics_changed()
        return self.comparison

    def figure(self, kind: str = "coverage", theme: str | None = None):
        """A plotly Figure of one of the explorer's charts: ``coverage``, ``confidence``, ``latency``
        (after ``profile()``), ``divergence`` (after ``validate(per_module=True)``) or ``compare``
        (after ``compare(other)``: time of both files and own SQNR by module). ``theme``:
        ``"dark"``, ``"light"`` or a plotly template name; by default plotly's own default template
        (``plotly.io.templates.default``), so a notebook set to ``plotly_dark`` gets dark figures."""
        return display.view("figure")(self, kind, theme)

    def summary(self) -> dict:
        """The headline figures as a dict."""
        return {
            "model_class": self.model_class,
            "strategy": self.strategy,
            "nodes": int(len(self.nodes)),
            "modules": int(len(self.modules)),
            "coverage_pct": round(self.coverage_pct, 2),  # known: exact + pattern
            "sources": {src: int((self.nodes["source"].astype(str) == src).sum()) for src in ("exact", "pattern", "inferred")},
            "seconds": round(self.seconds, 3),
            "onnx_path": str(self.onnx_path) if self.onnx_path else None,
            "sidecar_path": str(self.sidecar_path) if self.sidecar_path else None,
            "structure_only": self.structure_only,
            "failed": {a.name: a.reason for a in self.attempts if not a.ok},
        }

    def __repr__(self) -> str:
        s = self.summary()
        where = s["onnx_path"] or "in memory"
        lines = [f"ExportResult({s['model_class']}: strategy={s['strategy']}, {s['nodes']} nodes, "
                 f"known {s['coverage_pct']:.1f}%, {s['modules']} modules, {s['seconds']:.2f} s, {where})"]
        for name, reason in s["failed"].items():
            lines.append(f"  {name} not used: {reason.splitlines()[0] if reason else ''}")
        for change in next((a.switched for a in self.attempts if a.ok), ()):
            lines.append(f"  switched {change}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """A static summary for front ends without widgets (nbconvert HTML, VS Code without the extension)."""
        s = self.summary()
        e = html.escape
        top = self.modules[self.modules["depth"] == 1].sort_values("total_nodes", ascending=False).head(12)
        rows = "".join(
            f"<tr><td>{e(str(r.module))}</td><td>{e(str(r.module_class))}</td><td>{int(r.total_nodes)}</td></tr>"
            for r in top.itertuples())
        failed = "".join(f"<li>{e(k)}: {e(v.splitlines()[0] if v else '')}</li>" for k, v in s["failed"].items())
        io = "".join(f"<div>{kind}s: {e(describe_io(self.io, kind))}</div>" for kind in ("input", "output")
                     if len(self.io))
        return (
            f"<div class='hierx-summary'><b>{e(s['model_class'])}</b> exported with <b>{e(s['strategy'])}</b>: "
            f"{s['nodes']} ONNX nodes, known {s['coverage_pct']:.1f}%, {s['modules']} modules, "
            f"{s['seconds']:.2f} s &rarr; {e(s['onnx_path'] or 'in memory')}" + io
            + (f"<ul>{failed}</ul>" if failed else "")
            + f"<table><tr><th>module</th><th>class</th><th>nodes</th></tr>{rows}</table></div>"
        )

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": repr(self), "text/html": self._repr_html_()}
        try:
            widget_bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        except Exception:  # no notebook extra, or no kernel comm: the static summary stands
            return bundle
        if isinstance(widget_bundle, tuple):
            widget_bundle = widget_bundle[0]
        # The widget's own text/plain is "<HierxExplorer ...>": terminals and text exports keep ours.
        bundle.update({k: v for k, v in (widget_bundle or {}).items() if k != "text/plain"})
        return bundle


def result_of(model, path: Path | None = None, *, infos: list[dict] | None = None, model_class: str | None = None,
              attempts: list[Attempt] = (), seconds: float = 0.0, warnings: list[str] = (),
              sidecar_path: Path | None = None) -> ExportResult:
    """The result of a tagged ``onnx_ir.Model`` (read from ``path``, or in memory when None): its
    tables from the nodes' tags (``loading.tables``: ``NotTagged`` if none has one), the module
    tree from ``infos`` when given, else implied by the tags."""
    t = loading.tables(model, path, infos=infos, model_class=model_class)
    result = ExportResult(model_class=t.model_class, strategy=t.strategy, attempts=list(attempts), nodes=t.nodes,
                          modules=t.modules, coverage=t.coverage, coverage_pct=t.coverage_pct, seconds=seconds,
                          onnx_path=path, sidecar_path=sidecar_path, structure_only=t.structure_only,
                          warnings=list(warnings), io=t.io)
    result._onnx = OnnxModel(path, model)  # read once: the answers reuse it
    return result


def load(path, source=None) -> ExportResult:
    """``hierx_nb.load``: the tables of a file written by ``hierx_nb.export`` (or tagged later);
    with ``source`` (the tagged file or result it was made from), of an untagged file retagged from
    it (``retag(path, source)``). ``NoSuchFile``, ``NotOnnxFile`` (or an unreadable sidecar),
    ``NotTagged`` (no hierx tags).

    Node rows come from the file's own tags; the module tree (with modules that produced no node,
    parameters and classes) from the sidecar when one is beside it, else from the tags; ``latency``
    and ``divergence`` from the sidecar when they were measured on this file (or its export). Its
    ``validate``, ``profile`` and ``extract`` run on the file (``validate`` needs a PyTorch model).
    """
    if source is not None:
        return retag(path, source)
    path = Path(path)
    model = loading.read_model(path)
    side = loading.read_sidecar(path)
    if side is None:
        return result_of(model, path)
    result = result_of(model, path, infos=side.infos, model_class=side.model_class, attempts=side.attempts,
                       seconds=side.seconds, warnings=side.warnings, sidecar_path=side.path)
    for name, df in side.metrics.items():
        setattr(result, name, df)  # profile() / validate(per_module=True) measured earlier
    return result


def retag(transformed, source, output=None) -> ExportResult:
    """Give every node of ``transformed`` the module of the ``source`` nodes it came from.

    ``transformed``: a path, ``onnx.ModelProto`` or ``onnx_ir.Model`` (tagged in place: metadata only)
    made from ``source`` by any tool; ``source``: the tagged file (a path) or the result of
    ``hierx_nb.export``/``load``. Each node gets ``hierx.module``, ``hierx.tag``, ``namespace``,
    ``hierx.confidence`` (its rule's measured precision), ``hierx.source`` (the source node's for a
    carried node, else ``inferred``), ``hierx.rule`` (``placement.RULES``) and, for a fused node,
    ``hierx.fused``. With ``output``, the tagged copy is written there (and its ``.hierx.json``
    sidecar), staged beside it and moved into place; the graph is unchanged, so ONNX Runtime's
    outputs are bit-identical.

    Returns the same result type as ``hierx_nb.load``: ``profile``, ``validate`` and ``extract``
    work on it. Errors (``InputError``, nothing written): ``UntaggedSource``, ``NotMadeFrom`` (too
    few of its nodes trace back to the source), ``UnloadableModel`` (ONNX Runtime cannot load it).
    """
    out_path = check_output(output) if output is not None else None
    src = source if isinstance(source, ExportResult) else _load_source(source)
    model, path = retagging.transformed_model(transformed)
    retagging.tag_from(model, path, src.onnx().ir, src)
    infos = [{"module": r.module, "module_class": r.module_class, "parent": r.parent, "depth": r.depth,
              "params": r.params, "executed": r.executed} for r in src.modules.itertuples()]
    result = result_of(model, None, infos=infos, model_class=src.model_class)
    result.onnx_model = model
    if out_path is not None:
        retagging.write(result, model, out_path)
    return result


def _load_source(path) -> ExportResult:
    try:
        return load(path)
    except NotTagged:
        raise retagging.untagged_source(path) from None


def compare(a, b, *, inputs=None, runs: int = 20, warmup: int = 3, threads: int | None = None,
            sqnr_db: float = comparing.DEFAULT_SQNR_DB) -> pd.DataFrame:
    """One row per module of ``a`` in execution order (``COLUMNS``).

    ``a``, ``b``: tagged files (paths) or results; an untagged ``b`` is retagged from ``a`` first.
    ``inputs``: an ``--inputs`` SPEC or {name: array}, else ``a``'s export inputs, else made from
    a's graph input types; fed to both (floats cast to b's input dtype). ``nodes_a``/``nodes_b``:
    ONNX nodes in the module's subtree; ``op_changes``: how its own nodes changed (``MatMul→
    MatMulInteger ×3, +DynamicQuantizeLinear ×1``); ``ms_a``/``ms_b``: kernel ms per run of its
    subtree (``profile()``'s ``total_ms``), ``time_ratio`` = ms_b / ms_a; ``max_abs_diff``,
    ``sqnr_db``: b's module outputs against a's (inherited error included); ``own_max_abs_diff``,
    ``own_sqnr_db``: b's module on a's values at its inputs; ``note``: values not paired.
    ``attrs``: ``first_divergent`` (in the order modules finish in a, the first whose own SQNR is
    below ``sqnr_db``; None when none is), ``kernel_ms_a``/``_b``, ``unattributed_ms_a``/``_b``,
    ``sqnr_threshold_db``.

    Errors (one line): ``DifferentModels`` (two models, or b not made from a), ``InputMismatch``
    (inputs that do not fit one of the files), and those of ``load``/``retag``.
    """
    ra = _compared(a, "a")
    rb = _compared(b, "b", source=ra)
    return comparing.compare_results(ra, rb, inputs=inputs, runs=runs, warmup=warmup, threads=threads, sqnr_db=sqnr_db)


def _compared(x, label: str, source: ExportResult | None = None) -> ExportResult:
    """``x`` as a tagged result: as given, loaded, or (b) retagged from a when some of its nodes
    have no tags (a quantizer kept those of the nodes it left alone)."""
    if isinstance(x, ExportResult):
        return x
    try:
        if source is None:
            return _load_source(x)
        try:
            loaded = load(x)
        except NotTagged:
            return retag(x, source)
        return retag(x, source) if loaded.nodes["module"].isna().any() else loaded
    except NotMadeFrom as e:
        raise DifferentModels(e.message.replace("the file was not made from the source", f"{label} was not made from a"),
                              hint="compare two files of one model") from None
