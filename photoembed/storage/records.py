"""Plain records read from and written to the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Root:
    """A folder the user added to the library."""

    id: int
    path: Path
    protected: bool


@dataclass(frozen=True)
class FileState:
    """What the catalog knows of a file on disk, enough to tell whether it changed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    state: str


@dataclass(frozen=True)
class PhotoInfo:
    """Metadata of a photo, gathered at index time so that filters and keeper rules cost nothing later."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    taken: float | None = None
    taken_from_exif: bool = False
    has_gps: bool = False
    phash: bytes | None = None
    sharpness: float | None = None
    camera: str | None = None  # EXIF make and model
    software: str | None = None  # EXIF Software: camera firmware or the program that last saved it
    modified: float | None = None  # EXIF DateTime: when a camera or program last wrote the file
    jpeg_trace: float | None = None  # lossless formats: JPEG traces in the pixels (imaging.jpegtrace)
    #: JPEGs: libjpeg's quality (1-100) when its standard tables were used, 0 for the encoder's own tables
    #: (a camera's, say), None when not a JPEG or not read (imaging.jpegtrace.jpeg_tables).
    jpeg_tables: int | None = None


@dataclass(frozen=True)
class Photo:
    """A catalog row."""

    id: int
    root_id: int
    path: Path
    size: int
    mtime_ns: int
    content_hash: str | None
    state: str
    error: str | None
    info: PhotoInfo

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class Failure:
    """A photo that could not be read, with the reason shown to the user."""

    path: Path
    reason: str
