"""The launcher: window or CLI, and a clear word when Qt's system libraries are missing."""

from __future__ import annotations

import ctypes
import sys

import pytest

from photoembed import launcher


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 libraries are a Linux matter")
def test_missing_xcb_libraries_are_named_with_the_install_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_cdll = ctypes.CDLL

    def cdll(name: str, *args: object, **kwargs: object) -> object:
        if name in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
            raise OSError(f"{name}: cannot open shared object file")
        return real_cdll(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    missing = launcher.missing_qt_system_libraries()
    assert {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"} <= set(missing)
    assert launcher.gui_main([]) == 2
    err = capsys.readouterr().err
    assert "sudo apt install" in err
    apt_line = next(line for line in err.splitlines() if "apt install" in line)
    assert "libxcb-icccm4" in apt_line
    assert "libxcb-keysyms1" in apt_line
    assert "xcb-util-wm" in err  # the Fedora package of the same library


def test_no_check_where_qt_will_not_use_x11(monkeypatch: pytest.MonkeyPatch) -> None:
    def cdll(name: str, *args: object, **kwargs: object) -> object:
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    assert launcher.missing_qt_system_libraries({"QT_QPA_PLATFORM": "offscreen"}) == []
    assert launcher.missing_qt_system_libraries({"WAYLAND_DISPLAY": "wayland-0"}) == []
    if sys.platform.startswith("linux"):
        assert launcher.missing_qt_system_libraries({}) == list(launcher.QT_XCB_LIBRARIES)
