"""The duplicate finder's own catalog tables (schema migrations 2 and 3: marks, protected folders, the trash
journal) and its bulk reads of the photos table.

The bulk read takes only the head of each fingerprint blob (PDQ, quality, 8x8 layout: 98 bytes), so a
million photos cost ~100 MB; the 1 KB thumbnails are read only for the pairs that need a crop alignment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoembed.dedup.trash import FileFacts, TrashSlot
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
    #: The capture time the photo's own EXIF records (NaN when it records none: ``taken`` is then the file's).
    exposure: np.ndarray


class DedupStore:
    """Reads and writes of the dedup tables. Thread contract: the catalog's (one connection per thread)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- photos -------------------------------------------------------------------------------------

    def photo_columns(self) -> PhotoColumns:
        rows = self.catalog.db.execute(
            "SELECT id, size, content_hash, taken, substr(phash, 1, ?), taken_from_exif FROM photos "
            "WHERE state = 'ok' ORDER BY id",
            (fp.HEAD_BYTES,),
        ).fetchall()
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        sizes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        taken = np.fromiter((np.nan if r[3] is None else r[3] for r in rows), dtype=np.float64, count=n)
        exposure = np.where(np.fromiter((bool(r[5]) for r in rows), dtype=bool, count=n), taken, np.nan)
        quality = np.zeros(n, dtype=np.uint8)
        pdq = np.zeros((n, fp.PDQ_BYTES), dtype=np.uint8)
        layout = np.zeros((n, fp.LAYOUT_BYTES), dtype=np.uint8)
        for k, r in enumerate(rows):
            parsed = fp.parse(r[4]) if r[4] else None
            if parsed is not None:
                quality[k] = parsed.quality
                pdq[k] = np.frombuffer(parsed.pdq, dtype=np.uint8)
                layout[k] = parsed.layout.ravel()
        return PhotoColumns(ids, sizes, [r[2] for r in rows], quality, pdq, layout, taken, exposure)

    def thumbnails(self, photo_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The fingerprint thumbnails of some photos (those that have one).

        Only the blob's head and thumbnail are read (not the keypoints): the duplicate finder loads the
        thumbnails of every photo it queries crop windows with.
        """
        out: dict[int, np.ndarray] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for pid, blob in self.catalog.db.execute(
                f"SELECT id, substr(phash, 1, ?) FROM photos WHERE id IN ({','.join('?' * len(chunk))})",
                (fp.FINGERPRINT_BYTES, *chunk),
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

    def remove_marks(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Forget some "not duplicates" marks (the undo of :meth:`add_marks`). Returns how many were stored."""
        rows = sorted({(min(a, b), max(a, b)) for a, b in pairs})
        with self.catalog.transaction() as db:
            before = db.total_changes
            db.executemany("DELETE FROM dedup_not_duplicates WHERE hash_a = ? AND hash_b = ?", rows)
            return db.total_changes - before

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

    # -- journal ----------------------------------------------------------------------------------------
    #
    # Journal first: a row is written ("moving", durable) before its file moves and marked "trashed" after,
    # in the same transaction that drops the photo from the catalog. Undo: "restoring" before, "restored"
    # after. Closed states: "rolled_back" (interrupted before the move: left in place), "skipped" (a check
    # failed: never moved), "gone" (no longer in the trash: emptied by the user), "restored".

    def new_batch(self) -> int:
        with self._durable(), self.catalog.transaction() as db:
            cur = db.execute("INSERT INTO dedup_batches(created) VALUES (?)", (time.time(),))
            return int(cur.lastrowid or 0)

    def begin_move(
        self,
        *,
        batch_id: int,
        photo_id: int,
        path: Path,
        facts: FileFacts,
        kept: Path | None,
        slot: TrashSlot | None,
    ) -> int:
        """The intent, durable before anything moves. Returns the journal id."""
        with self._durable(), self.catalog.transaction() as db:
            cur = db.execute(
                "INSERT INTO dedup_trash_journal(batch_id, path, size, mtime_ns, content_hash, kept_path, trashed_at, "
                "state, photo_id, dev, ino, trash_dir, trash_name) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'moving', ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    str(path),
                    facts.size,
                    facts.mtime_ns,
                    facts.content_hash,
                    None if kept is None else str(kept),
                    time.time(),
                    photo_id,
                    facts.dev,
                    facts.ino,
                    None if slot is None else str(slot.folder),
                    None if slot is None else slot.name,
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_move(self, journal_id: int, path: Path) -> None:
        """The file is in the trash: mark the row and drop the photo from the catalog, in one transaction."""
        with self._durable(), self.catalog.transaction() as db:
            db.execute("UPDATE dedup_trash_journal SET state = 'trashed' WHERE id = ?", (journal_id,))
            row = db.execute("SELECT id FROM photos WHERE path = ?", (str(path),)).fetchone()
            if row is not None:
                self.catalog.delete_photos([int(row[0])])
                self.catalog.bump_generation()

    def skip(
        self,
        *,
        batch_id: int,
        path: Path,
        size: int,
        mtime_ns: int,
        content_hash: str | None,
        kept: Path | None,
        reason: str,
    ) -> None:
        """A planned file that was not moved because a check failed (kept for the batch's report)."""
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO dedup_trash_journal(batch_id, path, size, mtime_ns, content_hash, kept_path, trashed_at, "
                "state, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'skipped', ?)",
                (
                    batch_id,
                    str(path),
                    size,
                    mtime_ns,
                    content_hash,
                    None if kept is None else str(kept),
                    time.time(),
                    reason,
                ),
            )

    def set_state(
        self,
        journal_id: int,
        state: str,
        *,
        outcome: str | None = None,
        restored_path: Path | None = None,
        slot: TrashSlot | None = None,
    ) -> None:
        restored_at = time.time() if state == "restored" else None
        with self._durable(), self.catalog.transaction() as db:
            db.execute(
                "UPDATE dedup_trash_journal SET state = ?, outcome = COALESCE(?, outcome), "
                "restored_path = COALESCE(?, restored_path), restored_at = COALESCE(?, restored_at), "
                "trash_dir = COALESCE(?, trash_dir), trash_name = COALESCE(?, trash_name) WHERE id = ?",
                (
                    state,
                    outcome,
                    None if restored_path is None else str(restored_path),
                    restored_at,
                    None if slot is None else str(slot.folder),
                    None if slot is None else slot.name,
                    journal_id,
                ),
            )

    def state_of(self, journal_id: int) -> str | None:
        row = self.catalog.db.execute("SELECT state FROM dedup_trash_journal WHERE id = ?", (journal_id,)).fetchone()
        return None if row is None else str(row[0])

    def has_open_rows(self) -> bool:
        """Any row left "moving" or "restoring" (a run was interrupted): recovery has work."""
        return (
            self.catalog.db.execute(
                "SELECT 1 FROM dedup_trash_journal WHERE state IN ('moving', 'restoring') LIMIT 1"
            ).fetchone()
            is not None
        )

    def open_rows(self) -> list[JournalEntry]:
        return self._entries("state IN ('moving', 'restoring')", ())

    def last_open_batch(self) -> int | None:
        row = self.catalog.db.execute(
            "SELECT b.id FROM dedup_batches b WHERE b.undone_at IS NULL AND EXISTS "
            "(SELECT 1 FROM dedup_trash_journal j WHERE j.batch_id = b.id AND j.state IN ('trashed', 'restoring', "
            "'moving')) ORDER BY b.id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def batch_entries(self, batch_id: int) -> list[JournalEntry]:
        """Every row of the batch, in the order they were written."""
        return self._entries("batch_id = ?", (batch_id,))

    def batch_exists(self, batch_id: int) -> bool:
        return self.catalog.db.execute("SELECT 1 FROM dedup_batches WHERE id = ?", (batch_id,)).fetchone() is not None

    def close_batch_if_done(self, batch_id: int) -> bool:
        """Close the batch when none of its rows is in the trash or in flight any more."""
        with self.catalog.transaction() as db:
            left = db.execute(
                "SELECT 1 FROM dedup_trash_journal WHERE batch_id = ? AND state IN ('trashed', 'moving', 'restoring') "
                "LIMIT 1",
                (batch_id,),
            ).fetchone()
            if left is None:
                db.execute(
                    "UPDATE dedup_batches SET undone_at = COALESCE(undone_at, ?) WHERE id = ?", (time.time(), batch_id)
                )
            return left is None

    def reopen_batch(self, batch_id: int) -> None:
        with self.catalog.transaction() as db:
            db.execute("UPDATE dedup_batches SET undone_at = NULL WHERE id = ?", (batch_id,))

    def _entries(self, where: str, args: tuple[object, ...]) -> list[JournalEntry]:
        rows = self.catalog.db.execute(
            "SELECT id, batch_id, state, path, size, mtime_ns, content_hash, kept_path, photo_id, dev, ino, trash_dir, "
            f"trash_name, restored_path, outcome FROM dedup_trash_journal WHERE {where} ORDER BY id",
            args,
        ).fetchall()
        return [
            JournalEntry(
                id=int(r[0]),
                batch_id=int(r[1]),
                state=str(r[2]),
                path=Path(r[3]),
                size=int(r[4]),
                mtime_ns=int(r[5]),
                content_hash=r[6],
                kept_path=None if r[7] is None else Path(r[7]),
                photo_id=None if r[8] is None else int(r[8]),
                identity=None if r[9] is None or r[10] is None else (int(r[9]), int(r[10])),
                slot=None if r[11] is None or r[12] is None else TrashSlot(Path(r[11]), str(r[12])),
                restored_path=None if r[13] is None else Path(r[13]),
                outcome=r[14],
            )
            for r in rows
        ]

    @contextlib.contextmanager
    def _durable(self) -> Iterator[None]:
        """The catalog runs with synchronous=NORMAL; journal rows that precede a move must survive a power cut."""
        db = self.catalog.db
        if db.in_transaction:
            yield
            return
        db.execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            db.execute("PRAGMA synchronous=NORMAL")


@dataclass(frozen=True)
class JournalEntry:
    """One row of the trash journal.

    Attributes:
        state: "moving", "trashed", "restoring" (open) or "restored", "rolled_back", "skipped", "gone" (closed).
        identity: (st_dev, st_ino) of the file when it was checked, before it moved.
        slot: where it went in the trash (None for rows from before slots were recorded, or a trash with no
            open record).
        restored_path: where undo put it back (the original path, or a free name beside it).
        outcome: what happened, in words, for closed rows that were not simply restored.
    """

    id: int
    batch_id: int
    state: str
    path: Path
    size: int
    mtime_ns: int
    content_hash: str | None
    kept_path: Path | None
    photo_id: int | None
    identity: tuple[int, int] | None
    slot: TrashSlot | None
    restored_path: Path | None
    outcome: str | None
