"""hierx_nb's import graph, walked with ``ast`` (imports inside functions too): no cycle among its
modules, and the engine never imports the notebook layer (the package ``__init__`` aside)."""
from __future__ import annotations

import textwrap

from code_shape import Import, cycles, engine_to_notebook, function_level, imports


def test_no_import_cycle_counting_imports_inside_functions():
    assert cycles(imports()) == []


def test_the_engine_does_not_import_the_notebook_layer():
    assert engine_to_notebook(imports()) == []


def test_imports_inside_functions_are_only_the_cli_s_and_entry_points():
    """The CLI defers its heavy imports so ``hierx --help`` stays fast, the package ``__init__`` only
    imports IPython's magics when IPython asks for them; nothing else imports hierx_nb lazily."""
    lazy = {source for source, _ in function_level(imports())}
    assert lazy <= {"hierx_nb", "hierx_nb.cli"}, lazy


def test_the_walk_finds_cycles_through_function_level_imports(tmp_path):
    """The walker itself: a cycle closed only by an import inside a function is found."""
    pkg = tmp_path / "hierx_nb"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .c import T
        def f():
            from . import a
        x = 1
    """))
    (pkg / "c.py").write_text("from .notebook import view\n")
    (pkg / "notebook.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import d\n")
    (pkg / "sub" / "d.py").write_text("from . import e\n")  # its own package is already running: no edge
    (pkg / "sub" / "e.py").write_text("")
    edges = imports(tmp_path)
    assert Import("hierx_nb.b", "hierx_nb.a", 6, True) in edges
    assert not any(e.source == "hierx_nb.b" and e.target == "hierx_nb.c" for e in edges)  # TYPE_CHECKING
    assert cycles(edges) == [["hierx_nb.a", "hierx_nb.b"]]
    assert [(e.source, e.target) for e in engine_to_notebook(edges)] == [("hierx_nb.c", "hierx_nb.notebook")]
    assert list(function_level(edges)) == [("hierx_nb.b", 6)]
