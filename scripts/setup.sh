#!/usr/bin/env bash
# Set up (or refresh) the development environment in .venv at the repo root:
# CPU torch first (a bare "torch" requirement would pull a multi-GB CUDA build), the widget bundle
# built from js/, then the package in editable mode with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION (CPU)"
  "${PIP[@]}" install "torch==$TORCH_VERSION" 2> >(grep -v "^WARNING: Location" >&2)
fi

echo "setup: building the widget bundle (js/ -> hierx_nb/notebook/static/widget.js)"
command -v npm >/dev/null || { echo "setup: npm is required to build the widget (install Node.js 18+)" >&2; exit 1; }
(cd js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)

echo "setup: installing hierx_nb[test] (editable)"
"${PIP[@]}" install -e ".[test]" 2> >(grep -v "^WARNING: Location" >&2)
echo "setup: ready (.venv)"
