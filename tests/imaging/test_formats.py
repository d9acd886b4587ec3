"""Photo names, format names and format ranks."""

from __future__ import annotations

import pytest
from PIL import Image

from photoembed.imaging import formats
from photoembed.imaging.formats import (
    PHOTO_EXTENSIONS,
    format_of,
    format_rank,
    is_original_format,
    is_photo_name,
    is_raw_format,
    register_heif,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "jpeg"),
        ("A.JPEG", "jpeg"),
        ("x.jpe", "jpeg"),
        ("dir.with.dots/b.png", "png"),
        ("c.webp", "webp"),
        ("d.TIF", "tiff"),
        ("d.tiff", "tiff"),
        ("e.bmp", "bmp"),
        ("f.gif", "gif"),
        ("IMG_0001.HEIC", "heic"),
        ("g.heif", "heif"),
        ("h.avif", "avif"),
        ("IMG_1.CR2", "raw-cr2"),
        ("i.cr3", "raw-cr3"),
        ("j.nef", "raw-nef"),
        ("k.arw", "raw-arw"),
        ("l.dng", "raw-dng"),
        ("m.orf", "raw-orf"),
        ("n.rw2", "raw-rw2"),
        ("o.raf", "raw-raf"),
        ("p.pef", "raw-pef"),
        ("q.srw", "raw-srw"),
        ("notes.txt", "unknown"),
        ("jpg", "unknown"),
        ("archive.jpg.zip", "unknown"),
    ],
)
def test_format_of(name: str, expected: str) -> None:
    assert format_of(name) == expected
    assert is_photo_name(name) == (expected != "unknown")


def test_extensions_are_lowercase_with_dot() -> None:
    assert all(ext.startswith(".") and ext == ext.lower() for ext in PHOTO_EXTENSIONS)
    assert len(PHOTO_EXTENSIONS) == 22


def test_rank_orders_formats_from_raw_to_gif() -> None:
    order = ["raw-nef", "heic", "png", "bmp", "jpeg", "webp", "gif", "unknown"]
    ranks = [format_rank(fmt) for fmt in order]
    assert ranks == sorted(ranks, reverse=True)
    assert len(set(ranks)) == len(ranks)
    assert format_rank("tiff") == format_rank("png")
    assert format_rank(None) == 0


def test_original_formats() -> None:
    assert is_original_format("raw-cr3")
    assert is_original_format("heic")
    assert not is_original_format("jpeg")
    assert not is_original_format("png")
    assert not is_original_format(None)
    assert is_raw_format("raw-dng")
    assert not is_raw_format("jpeg")
    assert not is_raw_format(None)


def test_register_heif_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    register_heif()
    assert "HEIF" in Image.OPEN
    calls: list[dict[str, object]] = []
    monkeypatch.setattr("pillow_heif.register_heif_opener", lambda **kw: calls.append(kw))
    register_heif()
    assert calls == []
    # A fresh process state registers exactly once.
    monkeypatch.setattr(formats, "_heif_registered", False)
    register_heif()
    register_heif()
    assert len(calls) == 1
