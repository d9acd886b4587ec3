"""The desktop app's entry point: ``photoembed`` with no arguments (or ``photoembed-gui``) runs :func:`main`."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from photoembed import __version__
from photoembed.config import Paths
from photoembed.gui import theme
from photoembed.gui.controller import LibraryController
from photoembed.gui.grid import release_clipboard
from photoembed.gui.main_window import MainWindow
from photoembed.ml.runtime import prepare_environment

logger = logging.getLogger(__name__)

APP_ID = "photoembed"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="photoembed", description="photoembed desktop app")
    parser.add_argument("--home", metavar="DIR", help="keep all data, cache and config under DIR")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("folders", nargs="*", type=Path, help="folders to add to the library")
    known, _qt_args = parser.parse_known_args(list(argv))
    return known


def create_application(argv: Sequence[str]) -> QApplication:
    """The QApplication, themed to follow the system's light or dark appearance."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0] if sys.argv else APP_ID,
                                                                            *argv])
    app.setApplicationName(APP_ID)
    app.setApplicationDisplayName("photoembed")
    app.setOrganizationName(APP_ID)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(theme.app_icon())
    theme.apply_theme(app)
    QGuiApplication.styleHints().colorSchemeChanged.connect(lambda _scheme: theme.apply_theme(app))
    return app


def persist_store(paths: Paths) -> QSettings:
    """Window geometry and other GUI-only state: an INI file in the library's config folder."""
    return QSettings(str(paths.config / "window-state.ini"), QSettings.Format.IniFormat)


def build_window(paths: Paths, *, folders: Sequence[Path] = (), watch: bool = True) -> MainWindow:
    """The controller and the window, with the library opening on the worker thread."""
    controller = LibraryController(paths, watch=watch)
    window = MainWindow(controller, persist=persist_store(paths))
    controller.open(then_add=[f.expanduser().resolve() for f in folders])
    return window


def raise_window(window: MainWindow) -> None:
    """Bring the window to the front (a second launch asked for it)."""
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


def install_excepthooks(app: QApplication) -> None:
    """Uncaught exceptions on any thread are logged and shown once in a dialog, never a silent exit."""

    def show(text: str) -> None:
        QMessageBox.critical(None, "photoembed: internal error",
                             "Something went wrong inside photoembed (a bug). The app keeps running.\n\n" + text)

    def hook(kind: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
        logger.critical("Uncaught exception", exc_info=(kind, value, tb))
        QTimer.singleShot(0, app, lambda: show(f"{kind.__name__}: {value}"))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            logger.critical("Uncaught exception in thread %s", args.thread, exc_info=args.exc_value)

    sys.excepthook = hook
    threading.excepthook = thread_hook


def main(argv: list[str]) -> int:
    """Open the window and run until it closes. ``argv``: ``[--home DIR] [FOLDER...]`` (no program name)."""
    args = parse_args(argv)
    level = logging.WARNING if args.verbose <= 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Before any OpenMP runtime loads (faiss's or torch's): spin-waiting threads would starve the GUI thread.
    prepare_environment()
    paths = Paths.resolve(args.home)
    app = create_application([])
    install_excepthooks(app)
    from photoembed.gui.instance import SingleInstance

    instance = SingleInstance(paths.data)
    if not instance.acquire():
        # Another window has this library open: it was brought to the front instead.
        sys.stderr.write(f"photoembed is already open on {paths.data}; its window was brought to the front.\n")
        return 0
    window = build_window(paths, folders=args.folders)
    instance.activated.connect(lambda: raise_window(window))
    app.aboutToQuit.connect(instance.release)
    window.show()
    # Everything built so far lives as long as the app: keep it out of the collector's full passes, which
    # otherwise stop every thread (the GUI thread too) for tens of milliseconds while indexing allocates.
    gc.freeze()
    app.aboutToQuit.connect(release_clipboard)
    return int(app.exec())
