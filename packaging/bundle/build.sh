#!/usr/bin/env bash
# Build the one-folder app bundle into dist/photoembed with PyInstaller, print its size, and smoke-test it.
# Uses .venv (bash packaging/install.sh first; a CPU-only torch keeps the bundle small), or the virtual
# environment named by VENV; the smoke test makes its tiny model with DEV_PYTHON (default: the same venv's).
#   Windows: run the same spec from a Windows venv (`pyinstaller packaging\bundle\photoembed.spec`);
#   macOS: the spec also writes dist/photoembed.app (sign it with `codesign --deep` before sharing).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pip install --quiet 'pyinstaller>=6.10'
start=$(date +%s)
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN --distpath dist --workpath build/bundle \
    packaging/bundle/photoembed.spec
echo "built dist/photoembed in $(( $(date +%s) - start )) s: $(du -sh dist/photoembed | cut -f1)"
DEV_PYTHON=${DEV_PYTHON:-$VENV/bin/python} bash packaging/bundle/smoke.sh dist/photoembed/photoembed
