#!/usr/bin/env bash
# Smoke-test a built bundle: install a tiny local weights file, index a few photos, search, open the window
# offscreen for a few seconds, quit. Usage: smoke.sh PATH/TO/photoembed
set -euo pipefail
app=$(realpath "$1")
root="$(cd "$(dirname "$0")/../.." && pwd)"
dev_python=${DEV_PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
# The tiny model and photos come from the development environment (the bundle has no test code): DEV_PYTHON
# (default: the checkout's .venv/bin/python), run from the checkout's root.
"$dev_python" - "$work" <<'PY'
import sys
from pathlib import Path
from tests.conftest import make_photo
from tests.tiny_clip import write_tiny_model
work = Path(sys.argv[1])
write_tiny_model(work / "model")
for i in range(4):
    make_photo(work / "photos" / f"p{i}.jpg", seed=i)
PY
cd "$work"
export PHOTOEMBED_HOME="$work/home"
t0=$(date +%s.%N)
"$app" --help >/dev/null
echo "bundle --help: $(echo "$(date +%s.%N) - $t0" | bc) s"
"$app" model install model/photoembed-tiny-seed0.pt --model photoembed-tiny/seed0 --config model/photoembed-tiny.json
"$app" add photos
"$app" index
# The ONNX export must have worked (else the app quietly runs the CPU on torch, half as fast).
"$app" status --json | "$dev_python" -c '
import json, sys
runtime = json.load(sys.stdin)["runtime"]
sys.exit(0 if runtime["export"] == "ready" else f"the ONNX export is not ready in the bundle: {runtime}")'
"$app" search "a photo" --json -k 2 | grep -q '"path"'
set +e
t0=$(date +%s.%N)
QT_QPA_PLATFORM=offscreen timeout 10 "$app"
rc=$?
set -e
[ "$rc" -eq 124 ] || { echo "the bundle's window exited with $rc" >&2; exit 1; }
echo "bundle smoke test passed: model install, add, index, search, window"
