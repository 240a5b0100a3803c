#!/usr/bin/env bash
# Set up .venv (and Chromium for the browser tests, when missing), type-check and unit-test the front end, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing Chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: the browser tests need Chromium at /usr/bin/chromium (Debian: sudo apt-get install chromium)" >&2
    exit 1
  fi
fi
echo "test: linting (ruff; settings in pyproject.toml)"
.venv/bin/ruff check .
echo "test: type-checking the front end (js/: tsc --noEmit over its JSDoc types)"
(cd js && npm run --silent check)
echo "test: the front end's unit tests (js/test: node --test, no browser)"
(cd js && npm test --silent)
exec .venv/bin/python -m pytest "$@"
