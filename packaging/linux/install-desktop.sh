#!/usr/bin/env bash
# Install photoembed's launcher entry, AppStream metadata and icons for the current user, so that it shows
# in the desktop's application menu. Needs `photoembed-gui` on PATH (pip install 'photoembed[gui]', or the
# app bundle's folder). Undo with: packaging/linux/install-desktop.sh --uninstall
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
id=io.github.photoembed.Photoembed

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$data/applications/$id.desktop" "$data/metainfo/$id.metainfo.xml"
    find "$data/icons/hicolor" -name "$id.*" -delete 2>/dev/null || true
    echo "Removed photoembed's desktop entry from $data"
    exit 0
fi

install -Dm644 "$here/$id.desktop" "$data/applications/$id.desktop"
install -Dm644 "$here/$id.metainfo.xml" "$data/metainfo/$id.metainfo.xml"
for icon in "$root"/resources/hicolor/*/apps/"$id".*; do
    size_dir="$(basename "$(dirname "$(dirname "$icon")")")"
    install -Dm644 "$icon" "$data/icons/hicolor/$size_dir/apps/$(basename "$icon")"
done
# Refresh the caches where the tools exist (they are optional: desktops rescan on their own too).
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "Installed photoembed's desktop entry, metadata and icons under $data"
