"""The shape of hierx_nb's code, read with ``ast``: its import graph (imports inside functions
included), the cycles in it, and the longest functions.

``python tests/code_shape.py`` prints the figures (issue 15's before/after note); ``test_imports.py``
asserts on them.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hierx_nb"
NOTEBOOK = f"{PACKAGE}.notebook"


@dataclass(frozen=True)
class Import:
    source: str        # the importing module (``hierx_nb.x``; a package is named by its ``__init__``)
    target: str        # the hierx_nb module imported
    line: int
    in_function: bool  # made inside a function body (runs when the function is called)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (``hierx_nb.notebook`` is its ``__init__.py``)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node, name: str, package: str, mods: dict) -> list[str]:
    """The hierx_nb modules one import statement of module ``name`` (in ``package``) runs."""
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
        found = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
    hits = []
    for t in found:
        while t and t not in mods:
            t = t.rpartition(".")[0]
        if not t.startswith(PACKAGE):
            continue
        # Python runs each enclosing package's __init__ first (one that holds the importer is
        # already running).
        parts = t.split(".")
        hits += [p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
                 if not (name == p or name.startswith(p + "."))] + [t]
    return [t for t in dict.fromkeys(hits) if t != name]


def _walk_imports(node, name: str, package: str, mods: dict, in_function: bool, out: list[Import]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            out.extend(Import(name, t, child.lineno, in_function) for t in _targets(child, name, package, mods))
        inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        _walk_imports(child, name, package, mods, inside, out)


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of a hierx_nb module by a hierx_nb module, with where it is made. Importing
    ``hierx_nb.a.b`` also runs the package ``hierx_nb.a`` (its ``__init__``): that is an edge too
    (the top package ``hierx_nb`` aside, which every submodule would name, and a package holding the
    importer, which is already running). Imports under ``if TYPE_CHECKING:`` never run and are left out."""
    mods = modules(root)
    out: list[Import] = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _walk_imports(tree, name, package, mods, False, out)
    return out


def cycles(edges: list[Import], leave_out: frozenset[str] = frozenset({PACKAGE})) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), largest first.
    ``leave_out``: modules not counted (the package ``__init__``, which re-exports the API)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.source in leave_out or e.target in leave_out:
            continue
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(found, key=len, reverse=True)


def function_level(edges: list[Import]) -> dict[tuple[str, int], list[str]]:
    """The import statements made inside functions: ``{(module, line): [hierx_nb modules it imports]}``."""
    out: dict[tuple[str, int], list[str]] = {}
    for e in edges:
        if e.in_function:
            out.setdefault((e.source, e.line), []).append(e.target)
    return out


def engine_to_notebook(edges: list[Import]) -> list[Import]:
    """Imports of the notebook layer by engine modules (the package ``__init__`` aside: IPython's entry point)."""
    return [e for e in edges if e.source != PACKAGE and not e.source.startswith(NOTEBOOK)
            and (e.target == NOTEBOOK or e.target.startswith(NOTEBOOK + "."))]


def _functions(node, module: str, prefix: str, found: list[tuple[int, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qual = f"{prefix}{child.name}"
            found.append((child.end_lineno - child.lineno + 1, f"{module}:{qual}"))
            _functions(child, module, qual + ".", found)
        elif isinstance(child, ast.ClassDef):
            _functions(child, module, f"{prefix}{child.name}.", found)
        else:
            _functions(child, module, prefix, found)


def longest_functions(root: Path = ROOT, n: int = 10) -> list[tuple[int, str]]:
    """``(lines, module:qualified name)`` of the ``n`` longest functions (decorators excluded)."""
    found: list[tuple[int, str]] = []
    for name, path in modules(root).items():
        _functions(ast.parse(path.read_text(encoding="utf-8")), name, "", found)
    return sorted(found, key=lambda t: (-t[0], t[1]))[:n]


_JS_LONGEST = r"""
const ts = require(process.argv[1]);
const fs = require('fs');
const out = [];
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const visit = (node, prefix) => {
    let name = null;
    if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node)) name = node.name ? node.name.getText(sf) : '<anonymous>';
    else if ((ts.isArrowFunction(node) || ts.isFunctionExpression(node))) {
      const p = node.parent;
      name = p && ts.isVariableDeclaration(p) ? p.name.getText(sf) : (p && ts.isPropertyAssignment(p) ? p.name.getText(sf) : null);
      if (name === null) name = '<anonymous@' + (sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1) + '>';
    }
    if (name !== null) {
      const a = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const b = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push([b - a + 1, file.split('/').pop() + ':' + prefix + name]);
      ts.forEachChild(node, c => visit(c, prefix + name + '.'));
    } else ts.forEachChild(node, c => visit(c, prefix));
  };
  visit(sf, '');
}
console.log(JSON.stringify(out));
"""


def longest_js_functions(root: Path = ROOT, n: int = 10) -> list[tuple[int, str]] | None:
    """The same for ``js/src/*.js`` (TypeScript's parser, from ``js/node_modules``); None without node or it."""
    ts = root / "js" / "node_modules" / "typescript"
    if not ts.is_dir():
        return None
    files = [str(p) for p in sorted((root / "js" / "src").glob("*.js"))]
    try:
        text = subprocess.run(["node", "-e", _JS_LONGEST, str(ts), *files], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted(((int(a), b) for a, b in json.loads(text)), key=lambda t: (-t[0], t[1]))[:n]


def report(root: Path = ROOT) -> str:
    edges = imports(root)
    found = cycles(edges)
    lazy = function_level(edges)
    lines = [f"import cycles among {PACKAGE}'s modules (imports inside functions counted, the package "
             f"__init__ aside): {len(found)}"]
    lines += [f"  {len(c)} modules: {', '.join(m.removeprefix(PACKAGE + '.') for m in c)}" for c in found]
    lines.append(f"function-level imports of {PACKAGE} modules (import statements): {len(lazy)}")
    lines += [f"  {source}:{line} -> {', '.join(targets)}" for (source, line), targets in lazy.items()]
    bad = engine_to_notebook(edges)
    lines.append(f"engine imports of {NOTEBOOK}: {len(bad)}")
    lines += [f"  {e.source}:{e.line} -> {e.target}" for e in bad]
    lines.append("10 longest Python functions (lines):")
    lines += [f"  {k:4d}  {name}" for k, name in longest_functions(root)]
    js = longest_js_functions(root)
    lines.append("10 longest JS functions in js/src (lines):" if js is not None else "JS: typescript not installed in js/")
    lines += [f"  {k:4d}  {name}" for k, name in js or []]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
