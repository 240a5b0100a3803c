"""HierxExplorer: an anywidget that explores an ExportResult (module tree, coverage, metrics, nodes).

Its traits ``header``, ``tree``, ``nodes``, ``graph`` and ``metrics`` follow the data contract in
``hierx_nb/notebook/payload.py``; each is checked when set (``traitlets.TraitError`` says which
part is wrong). ``selected`` (Unicode) is the selected module's qualified name ("" = the whole
model); synced both ways, Python is the source of truth: an unknown name raises
``hierx_nb.UnknownModule``, as ``result.mapping`` and ``result.extract`` do.

The front end (``static/widget.js``) and its styles (``static/widget.css``) are class-level files:
anywidget reads each once per process, not per explorer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..errors import UnknownModule
from .payload import build_metrics, check_payload, payload
from .report import render_html

STATIC = Path(__file__).parent / "static"
ESM_PATH = STATIC / "widget.js"
CSS_PATH = STATIC / "widget.css"

_BUILD_HINT = (
    "the hierx_nb widget front end is not built: {path} is missing. Build it once with "
    "`cd js && npm ci && npm run build` from the hierx_nb source tree (or run the project's setup "
    "script), then restart the kernel."
)


def _built(path: Path) -> Path | str:
    # A missing file must not break `import`: anywidget would raise at class creation. The
    # placeholder is never sent: __init__ raises the build hint first.
    return path if path.is_file() else ""


class HierxExplorer(anywidget.AnyWidget):
    """Interactive explorer of an ``ExportResult``: module tree, coverage, metrics, node table.

    Build it with ``HierxExplorer.from_result(result)`` (or ``result.widget``). ``explorer.selected``
    is the selected module's qualified name ("" = the whole model); set it to move the selection.
    """

    _esm = _built(ESM_PATH)
    _css = _built(CSS_PATH)

    header = traitlets.Dict().tag(sync=True)
    tree = traitlets.Dict().tag(sync=True)
    nodes = traitlets.Dict().tag(sync=True)
    graph = traitlets.Dict().tag(sync=True)
    metrics = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        for path in (ESM_PATH, CSS_PATH):
            if not path.is_file():
                raise FileNotFoundError(_BUILD_HINT.format(path=path))
        self._module_names: set[str] | None = None
        self._result: Any = None  # set by from_result: what the "HTML report" download renders
        super().__init__(**kwargs)
        self.on_msg(self._on_front_end_msg)

    @classmethod
    def from_result(cls, result: Any, selected: str = "") -> HierxExplorer:
        explorer = cls(**payload(result, selected))
        explorer._result = result
        return explorer

    def _on_front_end_msg(self, _widget, content: Any, _buffers) -> None:
        # The front end's "HTML report" download: the page render_html makes, sent back to save.
        if isinstance(content, dict) and content.get("type") == "report-html" and self._result is not None:
            self.send({"type": "report-html", "html": render_html(self._result, self.selected)})

    def refresh_metrics(self, result: Any) -> None:
        """Re-read ``result``'s latency, divergence and warnings (after ``profile()`` or ``validate()``)."""
        self.metrics = build_metrics(result, self.tree["names"])
        self.header = {**self.header, "warnings": [str(w) for w in getattr(result, "warnings", None) or []]}

    @traitlets.validate("tree")
    def _check_tree(self, proposal):
        _checked(lambda: check_payload(tree=proposal["value"]))
        self._module_names = None
        return proposal["value"]

    @traitlets.validate("nodes")
    def _check_nodes(self, proposal):
        tree = self.tree or None  # set first by from_result; node indices are checked against it
        _checked(lambda: check_payload(tree=tree, nodes=proposal["value"]))
        return proposal["value"]

    @traitlets.validate("graph")
    def _check_graph(self, proposal):
        nodes = self.nodes or None  # set before graph by from_result; producer/consumer indices are checked against it
        _checked(lambda: check_payload(nodes=nodes, graph=proposal["value"]))
        return proposal["value"]

    @traitlets.validate("selected")
    def _check_selected(self, proposal) -> str:
        value = proposal["value"]
        value = "" if value is None else str(value)
        self._check_module(value)
        return value

    def _check_module(self, value: str) -> None:
        if self._module_names is None:
            self._module_names = set(self.tree.get("names", []))
        if value and value not in self._module_names:
            raise UnknownModule.of(value, sorted(self._module_names))

    def set_state(self, sync_data):
        # traitlets rolls a trait back only on TraitError when validation is deferred (a comm update
        # holds notifications): refuse an unknown name before any trait changes.
        if "selected" in sync_data:
            self._check_module("" if sync_data["selected"] is None else str(sync_data["selected"]))
        super().set_state(sync_data)

    @property
    def payload_bytes(self) -> int:
        """Approximate size of the synced data (binary buffers + JSON strings), for budgeting."""
        total = 0
        for trait in ("header", "tree", "nodes", "graph"):
            for v in getattr(self, trait).values():
                if isinstance(v, (bytes, bytearray, memoryview)):
                    total += len(v)
                elif isinstance(v, list):
                    total += sum(len(str(x).encode("utf-8", "surrogatepass")) + 3 for x in v)
                else:
                    total += len(str(v))
        return total


def _checked(check) -> None:
    try:
        check()
    except ValueError as e:
        raise traitlets.TraitError(f"bad explorer payload: {e}") from None
