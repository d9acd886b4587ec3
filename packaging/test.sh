#!/usr/bin/env bash
# Install photoembed with its development tools into .venv and run every check: lint, types, the layering
# contracts, the whole test suite, then the Qt-free suite again with PySide6 made unimportable (the core,
# the CLI and the services must work where Qt is not installed), then the built wheel on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install.sh dev
export QT_QPA_PLATFORM=offscreen
echo "== ruff";           .venv/bin/ruff check photoembed tests
echo "== mypy";           .venv/bin/mypy
echo "== import-linter";  .venv/bin/lint-imports
echo "== pytest (everything)"
.venv/bin/python -m pytest -q "$@"
echo "== pytest (no Qt installed)"
.venv/bin/python packaging/pytest_without_qt.py -q -m "not slow"
echo "== the wheel, installed alone in a clean venv"
PYTHON=.venv/bin/python bash packaging/check_wheel.sh
