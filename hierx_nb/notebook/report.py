"""The explorer as one self-contained HTML file: no kernel, no server, no network.

The page holds the built front end (``static/report.js``, the widget plus an in-page model),
its styles and the payload of ``payload.py`` as JSON (binary columns base64). A
Content-Security-Policy forbids every fetch, so the report works offline and cannot phone home.
"""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from ..files import check_output, publish, staging
from .payload import payload

STATIC = Path(__file__).parent / "static"
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _asset(name: str) -> str:
    path = STATIC / name
    if not path.is_file():
        raise FileNotFoundError(f"the hierx_nb front end is not built: {path} is missing. Build it once with "
                                "`cd js && npm ci && npm run build` from the hierx_nb source tree")
    return path.read_text(encoding="utf-8")


def render_html(result: Any, selected: str = "") -> str:
    """The report page for ``result`` as a string."""
    script = _asset("report.js")
    css = _asset("widget.css")
    # "</" never appears inside the JSON block, so no name can close the <script> early.
    data = json.dumps(_jsonable(payload(result, selected)), allow_nan=False).replace("</", "<\\/")
    title = html.escape(f"hierx: {getattr(result, 'model_class', '') or 'model'}")
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{title}</title>\n"
        "<style>body{margin:16px;max-width:1400px;background:#fff}</style>\n"
        f"<style>{css}</style>\n</head>\n<body>\n<div id=\"hierx-app\"></div>\n"
        f"<script type=\"application/json\" id=\"hierx-data\">{data}</script>\n"
        f"<script>{script}</script>\n</body>\n</html>\n"
    )


def write_html(result: Any, path: str | os.PathLike, selected: str = "") -> Path:
    """Write the report to ``path`` (staged beside it, then moved into place); returns the path."""
    out = check_output(path)
    page = render_html(result, selected)
    with staging(out.parent) as tmp:
        staged = tmp / out.name
        staged.write_text(page, encoding="utf-8")
        publish([(staged, out)])
    return out
