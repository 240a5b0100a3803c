"""Write the attribution into the ONNX model as metadata (never as node attributes)."""
from __future__ import annotations

import json

import onnx_ir as ir

from .attribution import NodeAttribution
from .hierarchy import ModuleTree, ancestors

MODULE_KEY = "hierx.module"
TAG_KEY = "hierx.tag"
CONFIDENCE_KEY = "hierx.confidence"
SOURCE_KEY = "hierx.source"
STRATEGY_KEY = "hierx.strategy"
VERSION_KEY = "hierx.version"
STRUCTURE_ONLY_KEY = "hierx.structure_only"
# A node that stands for several modules' nodes (an optimizer folded a BatchNorm into a Conv, a
# retag placed a fused node) is tagged with the module whose operation it computes; this prop
# names the others, as a JSON list of qualified names (names may hold any character, even ',').
FUSED_KEY = "hierx.fused"
# On a retagged file: which rule placed the node (hierx_nb.placement.RULES: carried, replaced, fused, ...).
RULE_KEY = "hierx.rule"
# Google Model Explorer groups nodes into nested layers by this '/'-separated path.
NAMESPACE_KEY = "namespace"


def confidence_text(confidence: float) -> str:
    """How a confidence is written (and so read back): three significant digits."""
    return f"{confidence:.3g}"


def fused_text(modules: list[str]) -> str:
    """How the modules folded into a node are written in its ``hierx.fused`` prop: a JSON list of
    qualified names, in graph order (``["stem.1"]``)."""
    return json.dumps(list(modules))


def fused_modules(props: dict[str, str]) -> list[str]:
    """The modules folded into a node, read from its metadata props (``[]`` when none)."""
    text = props.get(FUSED_KEY)
    if not text:
        return []
    names = json.loads(text)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{FUSED_KEY} must be a JSON list of module names, got {text!r}")
    return names


def apply_tags(attrs: dict[ir.Node, NodeAttribution], tags: dict[str, str], namespaces: dict[str, str]) -> None:
    """Write each node's module, tag (also its ``doc_string``), confidence, source, folded modules
    (``hierx.fused``, only when there are any) and Model Explorer namespace into its ``metadata_props``. ``tags`` and ``namespaces``: by module. Node names and the
    graph stay as they are."""
    for node, a in attrs.items():
        props = node.metadata_props
        props[NAMESPACE_KEY] = namespaces[a.module]
        props[MODULE_KEY] = a.module
        props[TAG_KEY] = tags[a.module]
        props[CONFIDENCE_KEY] = confidence_text(a.confidence)
        props[SOURCE_KEY] = a.source
        if a.fused:
            props[FUSED_KEY] = fused_text(a.fused)
        node.doc_string = tags[a.module]


def mark_model(model: ir.Model, *, strategy: str, version: str, structure_only: bool) -> None:
    """The model-level metadata: which strategy and hierx_nb version made the file, and whether it has weights."""
    model.metadata_props[STRATEGY_KEY] = strategy
    model.metadata_props[VERSION_KEY] = version
    model.metadata_props[STRUCTURE_ONLY_KEY] = "true" if structure_only else "false"


def module_namespace(tree: ModuleTree, module: str) -> str:
    """Model Explorer's ``namespace`` for a node of ``module``: one ``name: package.Class`` segment
    per module from the root (``: pkg.BertModel/encoder: pkg.BertEncoder/...``), the form
    torch.onnx's dynamo exporter writes, so every strategy groups alike. A ``/`` inside a name
    (a ModuleDict key) is written as ``∕`` (U+2215): Model Explorer splits on ``/``."""
    segments = []
    for name in reversed(ancestors(module)):
        info = tree.infos[name]
        segments.append(f"{name}: {info.class_path}".replace("/", "\u2215"))
    return "/".join(segments)
