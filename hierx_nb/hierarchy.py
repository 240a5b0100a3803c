"""The module tree of a model: qualified names, classes, parameters and readable class-path tags.

Tag format (documented in the README): ``/Root/Child/...`` where each segment is a module's class
name, then
  * ``.KEY`` when the module is an item of a torch.nn container (``ModuleList``, ``Sequential``,
    ``ModuleDict``) — the container itself is elided, so ``encoder.layer.0`` becomes ``BertLayer.0``;
  * ``:ATTR`` when the module is a torch.nn module or has a sibling of the same class, so siblings
    stay distinguishable (``Linear:query``, ``Linear:key``).
A container is kept as ``ModuleList:name`` when eliding it would make two tags equal.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch

CONTAINERS = (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)

# torch.nn leaves kept in filtered tags: they carry the model's structure (the seed's exception list).
DEFAULT_TORCH_NN_EXCEPTIONS = frozenset({
    "Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Embedding", "EmbeddingBag", "LayerNorm", "GroupNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d",
    "BatchNorm3d", "LSTM", "GRU", "RNN", "MultiheadAttention", "TransformerEncoderLayer",
    "TransformerDecoderLayer",
})


@dataclass
class ModuleInfo:
    name: str            # qualified name, "" for the root
    cls: str             # class name
    class_path: str      # module.qualname of the class
    parent: str | None
    depth: int
    params: int          # parameters owned by this module's subtree (each counted once)
    torch_nn: bool       # the class is defined in torch.nn
    container: bool
    signature: str
    children: list[str] = field(default_factory=list)


def is_torch_nn(module: torch.nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.")


def forward_signature(module: torch.nn.Module) -> str:
    try:
        return str(inspect.signature(module.forward))
    except (TypeError, ValueError):
        return ""


# -- tree algebra on qualified names ("" is the root, "a.b" a child of "a") ----------------------------
def parent_name(name: str) -> str | None:
    """``a.b.c`` -> ``a.b``; ``a`` -> ``""``; the root ``""`` -> None."""
    return None if name == "" else name.rpartition(".")[0]


def ancestors(name: str) -> list[str]:
    """``a.b.c`` -> ``[a.b.c, a.b, a, ""]`` (the name itself first, the root last)."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts), -1, -1)]


def common_ancestor(names: Iterable[str]) -> str:
    """The innermost module whose subtree holds every name (``""`` when there is none)."""
    common: list[str] | None = None
    for n in names:
        mine = ancestors(n)
        if common is None:
            common = mine
        else:
            held = set(mine)  # once per name, not once per candidate
            common = [a for a in common if a in held]
    return common[0] if common else ""


def in_subtree(name: str, module: str) -> bool:
    """Whether ``name`` is ``module`` or lies below it (everything lies in the root's subtree)."""
    return module == "" or name == module or name.startswith(module + ".")


def subtree_mask(names: pd.Series, module: str) -> pd.Series:
    """``in_subtree`` over a column of qualified names (missing names lie in no module's subtree but the root's)."""
    if module == "":
        return pd.Series(True, index=names.index)
    text = names.astype(str)
    return (text == module) | text.str.startswith(module + ".")


class NameTree:
    """The tree of a set of qualified names, their missing ancestors added.

    ``names``: pre-order (a parent before its children, siblings in the order given); ``parent``:
    each name's parent (the given one where ``parents`` names a known module, else its nearest
    ancestor in the tree; None for the root); ``children``; ``depth`` (root 0); ``added``: the
    ancestors that were not given. Built without recursion: deep models do not hit Python's limit.
    """

    def __init__(self, names: Iterable[str], parents: Mapping[str, str | None] | None = None):
        given = list(dict.fromkeys(names))
        known = set(given)
        self.added: list[str] = []
        order = list(given)
        for name in given:
            for a in ancestors(name)[1:]:
                if a not in known:
                    known.add(a)
                    self.added.append(a)
                    order.append(a)
        if "" not in known:
            known.add("")
            self.added.append("")
            order.append("")
        self.parent: dict[str, str | None] = {}
        for name in order:
            p = (parents or {}).get(name)
            if name == "" or not isinstance(p, str) or p not in known or p == name:
                p = parent_name(name)
                while p is not None and p not in known:
                    p = parent_name(p)
            self.parent[name] = p
        self.children: dict[str, list[str]] = {name: [] for name in order}
        for name in order:
            if self.parent[name] is not None:
                self.children[self.parent[name]].append(name)
        self.names: list[str] = []
        self.depth: dict[str, int] = {}
        seen: set[str] = set()
        stack = [("", 0)]
        while stack:
            name, depth = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            self.names.append(name)
            self.depth[name] = depth
            stack.extend((c, depth + 1) for c in reversed(self.children[name]))
        for name in order:  # a given parent column with a cycle: what it cut off hangs off the root
            if name not in seen:
                self.parent[name] = ""
                self.children[""].append(name)
                self.names.append(name)
                self.depth[name] = 1
                seen.add(name)

    def nearest(self, name: str) -> str:
        """``name`` if the tree holds it, else its nearest ancestor that it holds."""
        for a in ancestors(name):
            if a in self.parent:
                return a
        return ""

    def totals(self, own: Mapping[str, float]) -> dict[str, float]:
        """Per name: the sum of ``own`` over its subtree (values of names outside the tree go to their nearest ancestor in it)."""
        total = dict.fromkeys(self.names, 0)
        for name, value in own.items():
            total[self.nearest(name)] += value
        for name in reversed(self.names):  # children after their parent in pre-order
            p = self.parent[name]
            if p is not None:
                total[p] += total[name]
        return total


class ModuleTree:
    """Every module of a model by qualified name (as ``named_modules()`` gives it), with tags."""

    def __init__(self, model: torch.nn.Module):
        self.infos: dict[str, ModuleInfo] = {}
        self._alias: dict[str, str] = {}
        by_id: dict[int, str] = {}
        for name, module in model.named_modules(remove_duplicate=False):
            canonical = by_id.setdefault(id(module), name)
            if canonical != name:
                self._alias[name] = canonical
                continue
            parent = name.rpartition(".")[0] if name else None
            if parent is not None:
                parent = self._alias.get(parent, parent)
            self.infos[name] = ModuleInfo(
                name=name, cls=type(module).__name__,
                class_path=f"{type(module).__module__}.{type(module).__qualname__}",
                parent=parent, depth=self.infos[parent].depth + 1 if parent is not None else 0,
                params=0, torch_nn=is_torch_nn(module), container=isinstance(module, CONTAINERS),
                signature=forward_signature(module))
            if parent in self.infos:
                self.infos[parent].children.append(name)
        self._count_params(model)
        self.tags = self._build_tags()

    # -- names --------------------------------------------------------------------------------
    def canonical(self, name: str) -> str | None:
        """The qualified name ``name`` refers to (aliases resolved), or None if it is no module."""
        if name in self.infos:
            return name
        return self._alias.get(name)

    def resolve(self, path: str) -> tuple[str, bool]:
        """The deepest known module on ``path`` (dotted); True when the whole path was a module.

        Tolerates call-count suffixes that exporters add to reused modules (``act_1``, ``act@1``).
        """
        known = self.canonical(path)
        if known is not None:
            return known, True
        current = ""
        exact = True
        for part in _split_path(path):
            candidate = f"{current}.{part}" if current else part
            hit = self.canonical(candidate)
            if hit is None:
                base = re.sub(r"(@\d+|_\d+)$", "", part)
                hit = self.canonical(f"{current}.{base}" if current else base) if base != part else None
            if hit is None:
                exact = False
                break
            current = hit
        return current, exact

    def resolve_scopes(self, scopes: list[str], wrapper: str | None = None) -> tuple[str, bool]:
        """The module named by a chain of tracer scopes, innermost last; True when every scope resolved.

        TorchScript names a scope by the path from the nearest module whose forward ran: relative
        (``layer.0`` inside ``encoder``), or from an ancestor (``pos_branch.0`` inside ``pos_branch``),
        with ``_N`` added for the N-th further call of a reused module. A module reached through a
        container that never ran as a whole (``self.heads["cls"]`` of a ModuleDict, a Sequential's
        items called one by one) is named by its own key: a scope that names exactly one module
        below the current one by its trailing name parts resolves to it. ``wrapper``: the attribute
        under which a wrapper holds the model (its scopes for the root's children read
        ``wrapper.0``). A key holding ``/`` spans several scopes (node names split on ``/``).
        """
        current = ""
        i = 0
        while i < len(scopes):
            hit, used = None, 1
            for used in range(1, len(scopes) - i + 1):  # a ModuleDict key with '/' spans scopes
                hit = self._scope_hit(current, "/".join(scopes[i:i + used]), wrapper)
                if hit is not None:
                    break
            if hit is None:
                return current, False
            current, i = hit, i + used
        return current, True

    def _scope_hit(self, current: str, scope: str, wrapper: str | None) -> str | None:
        base = re.sub(r"_\d+$", "", scope)
        names = [scope] if base == scope else [scope, base]
        if wrapper and not current:
            names += [n[len(wrapper) + 1:] for n in names if n.startswith(wrapper + ".")]
        for name in names:
            hit = self._child_by_scope(current, name)
            if hit is not None:
                return hit
        for name in names:
            hit = self._unique_by_suffix(current, name)
            if hit is not None:
                return hit
        return None

    def _child_by_scope(self, current: str, scope: str) -> str | None:
        for anchor in ancestors(current):  # innermost first
            hit = self.canonical(f"{anchor}.{scope}" if anchor else scope)
            if hit is not None and (not current or hit == current or hit.startswith(current + ".")):
                return hit
        return None

    def _unique_by_suffix(self, current: str, scope: str) -> str | None:
        """The one module strictly below ``current`` whose qualified name ends with the parts of
        ``scope``, or None when none or several do."""
        prefix = current + "." if current else ""
        tail = "." + scope
        found = [n for n in self.infos if n.startswith(prefix) and n != current and ("." + n).endswith(tail)]
        return found[0] if len(found) == 1 else None

    # -- tags ---------------------------------------------------------------------------------
    def _count_params(self, model: torch.nn.Module) -> None:
        seen: set[int] = set()
        for name, module in model.named_modules():
            own = 0
            for p in module.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    own += p.numel()
            if own:
                for anc in ancestors(self.canonical(name) or name):
                    if anc in self.infos:
                        self.infos[anc].params += own

    def _segment(self, info: ModuleInfo, keep_containers: bool) -> tuple[str, bool]:
        """This module's tag segment and whether it is shown (elided containers are not)."""
        if not info.name:
            return info.cls, True
        parent = self.infos[info.parent]
        attr = info.name.rpartition(".")[2]
        if info.container and not keep_containers and self._elidable(info):
            return "", False
        if parent.container and parent.name:
            return f"{info.cls}.{attr}", True
        siblings = [self.infos[c].cls for c in parent.children if c != info.name]
        if info.torch_nn or info.cls in siblings:
            return f"{info.cls}:{attr}", True
        return info.cls, True

    def _elidable(self, info: ModuleInfo) -> bool:
        """A container is left out of tags when it is its parent's only container child."""
        parent = self.infos[info.parent]
        return sum(self.infos[c].container for c in parent.children) == 1

    def _build_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for name, info in self.infos.items():  # named_modules order: parents before children
            seg, shown = self._segment(info, keep_containers=False)
            base = tags.get(info.parent, "") if info.parent is not None else ""
            tags[name] = f"{base}/{seg}" if shown else base
        # Where eliding containers made two different modules' tags equal, spell those out in full.
        seen: dict[str, str] = {}
        clashes = set()
        for name, tag in tags.items():
            other = seen.setdefault(tag, name)
            if other != name and not self._is_elided_chain(other, name):
                clashes.update({other, name})
        for name in clashes:
            parts = []
            for anc in reversed(ancestors(name)):
                seg, _ = self._segment(self.infos[anc], keep_containers=True)
                parts.append(seg if anc else self.infos[anc].cls)
            tags[name] = "/" + "/".join(parts)
        return tags

    def _is_elided_chain(self, a: str, b: str) -> bool:
        """An elided container shares its parent's tag; that is not a clash."""
        return self.infos[a].container or self.infos[b].container

    def filtered_tag(self, name: str, exceptions: frozenset[str] | None) -> str:
        """The tag with torch.nn leaves not in ``exceptions`` folded into their parent."""
        if exceptions is None:
            return self.tags[name]
        cur = name
        while cur and self.infos[cur].torch_nn and not self.infos[cur].children and self.infos[cur].cls not in exceptions:
            cur = self.infos[cur].parent or ""
        return self.tags[cur]


def _split_path(path: str) -> list[str]:
    return [p for p in path.split(".") if p]


# What the whole model (module "") is called wherever modules are named for people (CLI trees, figures,
# the explorer: header.model_class there): its class name, this when the class is unknown.
ROOT_FALLBACK = "model"


def root_label(model_class: str | None) -> str:
    """The one name of the whole model: its class name (``BertModel``), ``"model"`` if unknown."""
    return str(model_class) if isinstance(model_class, str) and model_class else ROOT_FALLBACK


def module_label(module: str, model_class: str | None) -> str:
    """A module's qualified name for people; the whole model (``""``) by ``root_label``."""
    return module if module else root_label(model_class)
