"""How a result's display hooks reach the notebook layer without the engine importing it.

The engine (``ExportResult.widget``, ``to_html``, ``figure``, ``_repr_mimebundle_``) asks this
registry for a view by name; the notebook package registers its views when it is imported
(``hierx_nb/__init__`` imports it), and says here which ones its missing extras leave out.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

VIEWS = ("widget", "to_html", "figure")
_views: dict[str, Callable[..., Any]] = {}
_missing: dict[str, str] = {}


def register(name: str, view: Callable[..., Any]) -> None:
    """Make ``view`` the one the engine calls for ``name`` (one of ``VIEWS``)."""
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r}: one of {', '.join(VIEWS)}")
    _views[name] = view
    _missing.pop(name, None)


def unavailable(name: str, reason: str) -> None:
    """Record why ``name`` cannot be shown (an extra not installed): the message its callers get."""
    _views.pop(name, None)
    _missing[name] = reason


def view(name: str) -> Callable[..., Any]:
    """The registered view; ``ImportError`` saying what to install when there is none."""
    found = _views.get(name)
    if found is None:
        raise ImportError(_missing.get(name, f"{name} needs the notebook layer of hierx_nb: "
                                             "pip install 'hierx_nb[notebook]'"))
    return found
