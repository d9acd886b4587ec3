"""The duplicate finder's own catalog tables (schema migration 2) and its bulk reads of the photos table.

The bulk read takes only the head of each fingerprint blob (PDQ, quality, 8x8 layout: 98 bytes), so a
million photos cost ~100 MB; the 1 KB thumbnails are read only for the pairs that need a crop alignment.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoembed.imaging import fingerprint as fp
from photoembed.storage.catalog import Catalog


@dataclass
class PhotoColumns:
    """Rows of readable photos, as arrays (see photoembed.dedup.engine.FingerprintTable)."""

    ids: np.ndarray
    sizes: np.ndarray
    content_hashes: list[str | None]
    quality: np.ndarray
    pdq: np.ndarray
    layout: np.ndarray
    taken: np.ndarray


class DedupStore:
    """Reads and writes of the dedup tables. Thread contract: the catalog's (one connection per thread)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- photos -------------------------------------------------------------------------------------

    def photo_columns(self) -> PhotoColumns:
        rows = self.catalog.db.execute(
            "SELECT id, size, content_hash, taken, substr(phash, 1, ?) FROM photos WHERE state = 'ok' ORDER BY id",
            (fp.HEAD_BYTES,),
        ).fetchall()
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        sizes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        taken = np.fromiter((np.nan if r[3] is None else r[3] for r in rows), dtype=np.float64, count=n)
        quality = np.zeros(n, dtype=np.uint8)
        pdq = np.zeros((n, fp.PDQ_BYTES), dtype=np.uint8)
        layout = np.zeros((n, fp.LAYOUT_BYTES), dtype=np.uint8)
        for k, r in enumerate(rows):
            parsed = fp.parse(r[4]) if r[4] else None
            if parsed is not None:
                quality[k] = parsed.quality
                pdq[k] = np.frombuffer(parsed.pdq, dtype=np.uint8)
                layout[k] = parsed.layout.ravel()
        return PhotoColumns(ids, sizes, [r[2] for r in rows], quality, pdq, layout, taken)

    def thumbnails(self, photo_ids: Sequence[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for pid, blob in self.catalog.db.execute(
                f"SELECT id, phash FROM photos WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                parsed = fp.parse(blob) if blob else None
                if parsed is not None and parsed.thumb is not None:
                    out[int(pid)] = parsed.thumb
        return out

    def details(self, photo_ids: Sequence[int]) -> dict[int, fp.ParsedFingerprint]:
        """Whole parsed fingerprints (thumbnail, local features) of some photos, for the pairs to verify."""
        out: dict[int, fp.ParsedFingerprint] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for pid, blob in self.catalog.db.execute(
                f"SELECT id, phash FROM photos WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                parsed = fp.parse(blob) if blob else None
                if parsed is not None:
                    out[int(pid)] = parsed
        return out

    # -- "not duplicates" marks -------------------------------------------------------------------------

    def add_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        now = time.time()
        rows = {(min(a, b), max(a, b)) for a, b in pairs}
        with self.catalog.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO dedup_not_duplicates(hash_a, hash_b, created) VALUES (?, ?, ?)",
                [(a, b, now) for a, b in sorted(rows)],
            )
        return len(rows)

    def marks(self) -> set[tuple[str, str]]:
        return {(a, b) for a, b in self.catalog.db.execute("SELECT hash_a, hash_b FROM dedup_not_duplicates")}

    # -- protected folders --------------------------------------------------------------------------

    def protect(self, folder: Path) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT OR IGNORE INTO dedup_protected(path, added) VALUES (?, ?)", (str(folder), time.time()))

    def unprotect(self, folder: Path) -> bool:
        with self.catalog.transaction() as db:
            return db.execute("DELETE FROM dedup_protected WHERE path = ?", (str(folder),)).rowcount > 0

    def protected_folders(self) -> list[Path]:
        return [Path(r[0]) for r in self.catalog.db.execute("SELECT path FROM dedup_protected ORDER BY path")]

    # -- journal ------------------------------------------------------------------------------------

    def new_batch(self) -> int:
        with self.catalog.transaction() as db:
            cur = db.execute("INSERT INTO dedup_batches(created) VALUES (?)", (time.time(),))
            return int(cur.lastrowid or 0)

    def journal(
        self, *, batch_id: int, path: Path, size: int, mtime_ns: int, content_hash: str | None, kept: Path | None
    ) -> None:
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO dedup_trash_journal(batch_id, path, size, mtime_ns, content_hash, kept_path, "
                "trashed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch_id, str(path), size, mtime_ns, content_hash, None if kept is None else str(kept), time.time()),
            )

    def last_open_batch(self) -> int | None:
        row = self.catalog.db.execute(
            "SELECT b.id FROM dedup_batches b WHERE b.undone_at IS NULL AND EXISTS "
            "(SELECT 1 FROM dedup_trash_journal j WHERE j.batch_id = b.id) ORDER BY b.id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def batch_entries(self, batch_id: int) -> list[tuple[int, Path, str | None]]:
        """``(journal id, path, content hash)`` of the batch's files not yet restored."""
        rows = self.catalog.db.execute(
            "SELECT id, path, content_hash FROM dedup_trash_journal WHERE batch_id = ? AND restored_at IS NULL "
            "ORDER BY id",
            (batch_id,),
        )
        return [(int(r[0]), Path(r[1]), r[2]) for r in rows]

    def batch_exists(self, batch_id: int) -> bool:
        return self.catalog.db.execute("SELECT 1 FROM dedup_batches WHERE id = ?", (batch_id,)).fetchone() is not None

    def mark_restored(self, journal_id: int) -> None:
        with self.catalog.transaction() as db:
            db.execute("UPDATE dedup_trash_journal SET restored_at = ? WHERE id = ?", (time.time(), journal_id))

    def close_batch(self, batch_id: int) -> None:
        with self.catalog.transaction() as db:
            db.execute("UPDATE dedup_batches SET undone_at = ? WHERE id = ?", (time.time(), batch_id))
