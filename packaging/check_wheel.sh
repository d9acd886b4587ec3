#!/usr/bin/env bash
# Build the wheel, check that it carries what the app needs (icons, desktop entry, AppStream metadata), install
# it into a clean virtual environment and run it from there, outside the checkout: `photoembed --help`, the
# CLI on a few photos, and the window (offscreen) for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" .
wheel=$(ls "$work"/dist/photoembed-*.whl)
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KB)"
contents=$(unzip -Z1 "$wheel")
for expected in \
    photoembed/py.typed \
    'photoembed-.*\.data/data/share/photoembed/resources/photoembed\.svg' \
    'photoembed-.*\.data/data/share/photoembed/resources/icons/trash\.svg' \
    'photoembed-.*\.data/data/share/applications/io\.github\.photoembed\.Photoembed\.desktop' \
    'photoembed-.*\.data/data/share/metainfo/io\.github\.photoembed\.Photoembed\.metainfo\.xml' \
    'photoembed-.*\.data/data/share/icons/hicolor/256x256/apps/io\.github\.photoembed\.Photoembed\.png'; do
    grep -Eq "^$expected\$" <<<"$contents" || { echo "the wheel lacks $expected" >&2; exit 1; }
done
if grep -Eq '^(tests|packaging|resources)/' <<<"$contents"; then
    echo "the wheel carries files that are not the app's" >&2; exit 1
fi

"$PYTHON" -m venv "$work/venv"
start=$(date +%s)
"$work/venv/bin/pip" install --quiet "$wheel[gui]"
echo "installed into a clean venv in $(( $(date +%s) - start )) s: $(du -sh "$work/venv" | cut -f1)"
cd "$work"  # nothing of the checkout on the path from here on
venv/bin/photoembed --help >/dev/null
venv/bin/python - <<'PY'
import sys
from pathlib import Path
from photoembed.resources import resources_dir
found = resources_dir()
assert Path(sys.prefix) in found.parents, f"icons found outside the venv: {found}"
assert (found / "icons" / "search.svg").is_file()
print(f"icons from the wheel: {found}")
PY
mkdir photos
venv/bin/python -c "
from PIL import Image
for i in range(3):
    Image.new('RGB', (64 + i, 48), (40 * i, 90, 200)).save(f'photos/p{i}.jpg')"
export PHOTOEMBED_HOME="$work/home"
venv/bin/photoembed add photos >/dev/null
venv/bin/photoembed index >/dev/null 2>&1
venv/bin/photoembed status --json | venv/bin/python -c "import json, sys; s = json.load(sys.stdin); assert s['photos'] == 3, s"
# The window stays open until the timeout ends it (124); anything else is a crash at start-up.
set +e
QT_QPA_PLATFORM=offscreen timeout 8 venv/bin/photoembed-gui
rc=$?
set -e
[ "$rc" -eq 124 ] || { echo "photoembed-gui from the wheel exited with $rc" >&2; exit 1; }
echo "wheel check passed: --help, add/index/status and the window ran from a clean venv"
