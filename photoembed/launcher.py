"""The ``photoembed`` entry point: the desktop app with no arguments, the CLI with any."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping, Sequence

#: The shared libraries Qt's X11 platform plugin (libqxcb) links against that a bare Linux image may lack,
#: with the package that provides each on Debian/Ubuntu and on Fedora. Without them Qt prints "Could not
#: load the Qt platform plugin xcb" and aborts the process, which Python cannot catch: so look first.
QT_XCB_LIBRARIES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libGL.so.1": ("libgl1", "mesa-libGL"),
    "libEGL.so.1": ("libegl1", "mesa-libEGL"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Open the window when called bare (as a desktop launcher does), else run the CLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    if _opens_window(args):
        return gui_main(args)
    from photoembed.cli.main import main as cli_main

    return cli_main(
        args,
        external_benchmarks=[
            ("gui", "window start-up, GUI-thread stalls while indexing, grid scrolling (needs PySide6)", _gui_bench)
        ],
    )


def gui_main(argv: Sequence[str] | None = None) -> int:
    """Open the desktop app, or explain how to install it when Qt (or a library it needs) is missing."""
    missing = missing_qt_system_libraries()
    if missing:
        sys.stderr.write(qt_libraries_message(missing))
        return 2
    try:
        from photoembed.gui.app import main as run_gui
    except ImportError as exc:
        if "PySide6" not in str(exc):
            raise
        sys.stderr.write(
            "The desktop app needs PySide6: pip install 'photoembed[gui]'. "
            "The command line works without it: photoembed --help\n"
        )
        return 2
    return run_gui(list(sys.argv[1:] if argv is None else argv))


def _gui_bench(argv: list[str]) -> int:
    from photoembed.gui.bench import main as run_gui_bench

    return run_gui_bench(argv)


def _opens_window(args: Sequence[str]) -> bool:
    """Bare ``photoembed``, or only a ``--home`` choice, opens the window."""
    return (
        not args
        or (len(args) == 2 and args[0] == "--home")
        or (len(args) == 1 and args[0].startswith("--home="))
    )


def missing_qt_system_libraries(environ: Mapping[str, str] | None = None) -> list[str]:
    """The X11 libraries Qt will need here but cannot load (empty where Qt will not use X11)."""
    env = os.environ if environ is None else environ
    platform = env.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform.split(":")[0] not in ("", "xcb"):
        return []
    if not platform and env.get("WAYLAND_DISPLAY"):
        return []  # Qt takes its Wayland plugin first there
    missing = []
    for soname in QT_XCB_LIBRARIES:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return missing


def qt_libraries_message(missing: Sequence[str]) -> str:
    """One sentence, and the one install line per distribution family that fixes it."""
    debian = " ".join(dict.fromkeys(QT_XCB_LIBRARIES[m][0] for m in missing))
    fedora = " ".join(dict.fromkeys(QT_XCB_LIBRARIES[m][1] for m in missing))
    return (
        f"photoembed: the desktop app needs system libraries that are not installed ({', '.join(missing)}).\n"
        f"  Debian, Ubuntu:  sudo apt install {debian}\n"
        f"  Fedora:          sudo dnf install {fedora}\n"
        "The command line works without them: photoembed --help\n"
    )
