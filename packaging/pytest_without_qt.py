"""Run the Qt-free part of the suite in an interpreter where PySide6 cannot be imported.

This is how CI proves that the core, the CLI and the services need no Qt: a meta-path finder makes
``import PySide6`` fail exactly as it would where the package is not installed, then pytest runs with the
pytest-qt plugin off and tests/gui ignored.
"""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path

BLOCKED = ("PySide6", "shiboken6", "pytestqt")


class _QtBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked: testing without Qt)")


def main() -> int:
    sys.meta_path.insert(0, _QtBlocker())
    import pytest

    root = Path(__file__).resolve().parent.parent
    args = [
        "-c", str(root / "packaging" / "pytest-noqt.ini"),
        "--rootdir", str(root),
        "-p", "no:pytest-qt",
        "--ignore", str(root / "tests" / "gui"),
        *sys.argv[1:],
        str(root / "tests"),
    ]
    return int(pytest.main(args))


if __name__ == "__main__":
    raise SystemExit(main())
