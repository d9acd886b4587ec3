"""The ``photoembed`` entry point: the desktop app with no arguments, the CLI with any."""

from __future__ import annotations

import sys
from collections.abc import Sequence


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
    """Open the desktop app, or explain how to install it when Qt is missing."""
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
