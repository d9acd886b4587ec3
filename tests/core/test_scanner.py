from __future__ import annotations

import os
from pathlib import Path

from photoembed.config import DEFAULT_EXCLUDED_PATTERNS
from photoembed.core.scanner import ScannedFile, ScanProblem, ScanRules, scan

RULES = ScanRules(DEFAULT_EXCLUDED_PATTERNS)


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _names(items: list[ScannedFile | ScanProblem], root: Path) -> list[str]:
    return sorted(Path(i.path).relative_to(root).as_posix() for i in items if isinstance(i, ScannedFile))


def test_lists_photos_and_skips_system_hidden_and_other_files(tmp_path: Path) -> None:
    for name in ("a.jpg", "B.JPEG", "sub/c.png", "sub/deep/d.heic", "e.cr2", "notes.txt", ".hidden.jpg",
                 ".thumbnails/t.jpg", "@eaDir/x.jpg", ".git/y.jpg", "node_modules/z.png", "$RECYCLE.BIN/r.jpg",
                 "with space ü 🐶.jpg", "new\nline.jpg"):
        _touch(tmp_path / name)
    assert _names(list(scan(tmp_path, rules=RULES)), tmp_path) == sorted(
        ["a.jpg", "B.JPEG", "sub/c.png", "sub/deep/d.heic", "e.cr2", "with space ü 🐶.jpg", "new\nline.jpg"]
    )


def test_hidden_files_can_be_included(tmp_path: Path) -> None:
    _touch(tmp_path / ".hidden.jpg")
    assert _names(list(scan(tmp_path, rules=ScanRules((), include_hidden=True))), tmp_path) == [".hidden.jpg"]


def test_symlinks_never_leave_the_root_and_loops_end(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    _touch(root / "real" / "a.jpg")
    _touch(outside / "secret.jpg")
    os.symlink(outside, root / "link-out")
    os.symlink(outside / "secret.jpg", root / "secret-link.jpg")
    os.symlink(root, root / "real" / "loop")
    os.symlink(root / "missing.jpg", root / "broken.jpg")
    os.symlink(root / "real" / "a.jpg", root / "inside-link.jpg")
    items = list(scan(root, rules=RULES))
    assert _names(items, root) == ["real/a.jpg"]
    problems = {Path(i.path).name: i.reason for i in items if isinstance(i, ScanProblem)}
    assert problems["broken.jpg"] == "broken symbolic link"
    assert "outside the library" in problems["secret-link.jpg"]


def test_scoped_scan_of_a_subfolder_or_a_file(tmp_path: Path) -> None:
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "sub" / "b.jpg")
    assert _names(list(scan(tmp_path, rules=RULES, start=tmp_path / "sub")), tmp_path) == ["sub/b.jpg"]
    assert _names(list(scan(tmp_path, rules=RULES, start=tmp_path / "a.jpg")), tmp_path) == ["a.jpg"]
    assert list(scan(tmp_path, rules=RULES, start=tmp_path / "gone")) == []
    assert list(scan(tmp_path / "sub", rules=RULES, start=tmp_path / "a.jpg")) == []


def test_file_deleted_during_scan_is_skipped(tmp_path: Path) -> None:
    for i in range(5):
        _touch(tmp_path / f"{i}.jpg")
    results = []
    for item in scan(tmp_path, rules=RULES):
        results.append(item)
        (tmp_path / "4.jpg").unlink(missing_ok=True)
    assert all(isinstance(r, ScannedFile) for r in results)
