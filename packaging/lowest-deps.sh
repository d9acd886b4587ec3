#!/usr/bin/env bash
# Check that the dependency floors in pyproject.toml are honest: install the LOWEST version every
# requirement allows (each "name>=X" pinned to "name==X") into a throw-away venv, then run the Qt-free suite
# there. pip has no "lowest" resolution mode, so the floors become a constraints file.
#
#   bash packaging/lowest-deps.sh              # resolve, install, run the Qt-free suite (not the slow tests)
#   bash packaging/lowest-deps.sh --dry-run    # only resolve: proves the floors are installable together
#
# Environment: PYTHON (default python3, must be the oldest supported, 3.11), KEEP_VENV=1 to keep the venv,
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) to take torch's CPU wheels instead of PyPI's
# CUDA ones (about 2 GB less to download).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1 && shift

work=$(mktemp -d -t photoembed-lowest.XXXXXX)
cleanup() { [ "${KEEP_VENV:-0}" = 1 ] && echo "venv kept in $work" || rm -rf "$work"; }
trap cleanup EXIT

# The floors of the runtime dependencies (the GUI extra is left out: the suite runs without Qt).
"$PYTHON" - "$work/constraints.txt" <<'EOF'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as handle:
    project = tomllib.load(handle)["project"]
lines = []
for spec in project["dependencies"]:
    requirement, _, marker = spec.partition(";")
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement)
    name, bounds = match.group(1), match.group(2)
    floor = re.search(r">=\s*([^,\s]+)", bounds)
    if floor is None:
        sys.exit(f"{name} has no lower bound in pyproject.toml: give it one")
    lines.append(f"{name}=={floor.group(1)}" + (f" ;{marker}" if marker else ""))
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write("\n".join(lines) + "\n")
print("Lowest allowed versions:\n  " + "\n  ".join(lines))
EOF

"$PYTHON" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip
extra=()
[ -n "${TORCH_INDEX_URL:-}" ] && extra=(--extra-index-url "$TORCH_INDEX_URL")
# The test tools are not floors of photoembed: their current versions are fine.
tools=("pytest>=8" "pytest-timeout>=2.3")
if [ "$DRY_RUN" = 1 ]; then
    "${pip[@]}" install --dry-run --ignore-installed -c "$work/constraints.txt" "${extra[@]}" . "${tools[@]}"
    exit 0
fi
"${pip[@]}" install -c "$work/constraints.txt" "${extra[@]}" -e . "${tools[@]}"
"${pip[@]}" list --format=freeze > "$work/installed.txt"
echo "== installed"; cat "$work/installed.txt"
export QT_QPA_PLATFORM=offscreen
echo "== pytest (no Qt, lowest dependencies)"
"$work/venv/bin/python" packaging/pytest_without_qt.py -q -m "not slow" "$@"
