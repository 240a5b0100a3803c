#!/usr/bin/env bash
# The main job: set up .venv, then run notebooks/quickstart.ipynb headlessly on its built-in tiny
# BERT (no downloads). The executed notebook, the tagged ONNX file and its sidecar land in build/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="$PWD/build/quickstart"
mkdir -p "$OUT"
echo "demo: executing notebooks/quickstart.ipynb"
HIERX_OUT="$OUT/out" .venv/bin/jupyter nbconvert --to notebook --execute notebooks/quickstart.ipynb \
  --output-dir "$OUT" --ExecutePreprocessor.timeout=600 --log-level=WARN
echo "demo: executed notebook: $OUT/quickstart.ipynb"
echo "demo: tagged ONNX and sidecar:"
ls -1 "$OUT/out" | sed "s|^|  $OUT/out/|"
echo "demo: its module tree (hierx analyze, depth 2):"
.venv/bin/hierx analyze "$OUT/out/quickstart_bert.onnx" --depth 2
echo "demo: open it live with: .venv/bin/jupyter lab notebooks/quickstart.ipynb"
