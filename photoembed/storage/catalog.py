"""The SQLite catalog: roots, photos, their metadata and their embeddings.

The catalog is the source of truth; the FAISS index is rebuilt from it. It runs in WAL mode so that readers
(search, the GUI) never wait for the indexing thread's writes, and every write batch is one transaction, so a
crash loses at most the batch in flight.

Thread contract: a :class:`Catalog` hands each thread its own connection. Writes are meant to come from
one thread (the one that owns the model and the index), which SQLite serialises anyway.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from photoembed.errors import KnownError, NestedRootError
from photoembed.storage.records import Failure, FileState, Photo, PhotoInfo, Root
from photoembed.storage.schema import MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

VECTOR_DTYPE = np.dtype("<f2")  # float16 halves the catalog; CLIP cosine scores change by < 1e-3


class Catalog:
    """Access to ``catalog.sqlite3``. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Catalog:
        """Open (creating and migrating as needed) the catalog at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = cls(path)
        catalog._migrate()
        return catalog

    # -- connections ------------------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise KnownError(f"Cannot open the catalog {self.path}: {exc}") from exc
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at WAL checkpoints; safe with WAL
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: committed on success, rolled back on any exception."""
        db = self.db
        if db.in_transaction:  # nested: the outer transaction decides
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate(self) -> None:
        db = self.db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise KnownError(
                f"The catalog {self.path} was written by a newer photoembed (schema {version}); please upgrade"
            )
        for step in range(version, SCHEMA_VERSION):
            logger.info("Migrating catalog %s to schema %d", self.path, step + 1)
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[step]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {step + 1}")

    # -- meta ---------------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """A counter bumped by every change to the set of photos or vectors (tags the derived index)."""
        return int(self.get_meta("generation", "0") or 0)

    def bump_generation(self) -> int:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('generation', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
        return self.generation

    # -- roots --------------------------------------------------------------------------------------

    def add_root(self, path: Path) -> Root:
        """Add a root folder; adding one twice returns the existing root.

        Raises:
            NestedRootError: the folder is inside a root of the library, or holds one.
        """
        path = path.resolve()
        for other in self.roots():
            if other.path in path.parents:
                raise NestedRootError(
                    f"{path} is inside {other.path}, which is already a library folder: its photos are "
                    "already indexed", outer=other.path, inner=path,
                )
            if path in other.path.parents:
                raise NestedRootError(
                    f"{path} holds {other.path}, which is already a library folder: remove that one first "
                    f"(`photoembed remove {other.path}`), then add {path}", outer=path, inner=other.path,
                )
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO roots(path, protected, added_at) VALUES (?, 0, ?)", (str(path), time.time())
            )
        root = self.root_for_path(path)
        assert root is not None
        return root

    def remove_root(self, path: Path) -> int:
        """Forget a root and its photos (never touching files). Returns how many photos were forgotten."""
        path = path.resolve()
        with self.transaction() as db:
            row = db.execute("SELECT id FROM roots WHERE path = ?", (str(path),)).fetchone()
            if row is None:
                raise KnownError(f"{path} is not a folder of this library")
            count = db.execute("SELECT COUNT(*) FROM photos WHERE root_id = ?", (row[0],)).fetchone()[0]
            db.execute("DELETE FROM photos WHERE root_id = ?", (row[0],))
            db.execute("DELETE FROM roots WHERE id = ?", (row[0],))
        self.bump_generation()
        return int(count)

    def roots(self) -> list[Root]:
        rows = self.db.execute("SELECT id, path, protected FROM roots ORDER BY path").fetchall()
        return [Root(id=r["id"], path=Path(r["path"]), protected=bool(r["protected"])) for r in rows]

    def root_for_path(self, path: Path) -> Root | None:
        row = self.db.execute("SELECT id, path, protected FROM roots WHERE path = ?", (str(path),)).fetchone()
        return None if row is None else Root(id=row["id"], path=Path(row["path"]), protected=bool(row["protected"]))

    def set_root_protected(self, path: Path, protected: bool) -> None:
        with self.transaction() as db:
            cur = db.execute("UPDATE roots SET protected = ? WHERE path = ?", (int(protected), str(path.resolve())))
            if cur.rowcount == 0:
                raise KnownError(f"{path} is not a folder of this library")

    # -- photos -------------------------------------------------------------------------------------

    def file_states(self, root_id: int, under: Path | None = None) -> dict[str, FileState]:
        """What the catalog knows of every file of a root (optionally only under a sub-folder)."""
        sql = "SELECT id, path, size, mtime_ns, content_hash, state FROM photos WHERE root_id = ?"
        args: tuple[object, ...] = (root_id,)
        if under is not None:
            # A range on the path's UNIQUE index ("dir/" <= path < "dir0", '0' being '/' + 1) instead of
            # substr(), which scanned every row of the root: 0.02 ms instead of ~100 ms at 100k photos.
            # The unary + keeps SQLite from preferring the root_id index.
            folder = str(under).rstrip("/")
            sql = (
                "SELECT id, path, size, mtime_ns, content_hash, state FROM photos "
                "WHERE (path = ? OR (path >= ? AND path < ?)) AND +root_id = ?"
            )
            args = (folder, folder + "/", folder + "0", root_id)
        return {
            r["path"]: FileState(r["id"], r["path"], r["size"], r["mtime_ns"], r["content_hash"], r["state"])
            for r in self.db.execute(sql, args)
        }

    def root_counts(self) -> dict[int, tuple[int, int]]:
        """``{root_id: (readable, failed)}`` in one query (status and the sidebar refresh this often)."""
        rows = self.db.execute(
            "SELECT root_id, COALESCE(SUM(state = 'ok'), 0), COALESCE(SUM(state = 'error'), 0) "
            "FROM photos GROUP BY root_id"
        )
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def taken_range(self) -> tuple[float, float] | None:
        """Earliest and latest capture time of the readable photos (one indexed query), or None."""
        low, high = self.db.execute(
            "SELECT MIN(taken), MAX(taken) FROM photos WHERE state = 'ok' AND taken IS NOT NULL"
        ).fetchone()
        return None if low is None else (float(low), float(high))

    def upsert_photo(
        self,
        *,
        root_id: int,
        path: str,
        size: int,
        mtime_ns: int,
        content_hash: str | None,
        info: PhotoInfo | None = None,
        error: str | None = None,
    ) -> int:
        """Insert or update a photo by path; an error records the reason and keeps no metadata."""
        info = info or PhotoInfo()
        row = self.db.execute(
            """
            INSERT INTO photos(root_id, path, size, mtime_ns, content_hash, state, error, format, width,
                               height, taken, taken_from_exif, has_gps, phash, sharpness, indexed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(path) DO UPDATE SET
                root_id = excluded.root_id, size = excluded.size, mtime_ns = excluded.mtime_ns,
                content_hash = excluded.content_hash, state = excluded.state, error = excluded.error,
                format = excluded.format, width = excluded.width, height = excluded.height,
                taken = excluded.taken, taken_from_exif = excluded.taken_from_exif,
                has_gps = excluded.has_gps, phash = excluded.phash, sharpness = excluded.sharpness,
                indexed_at = excluded.indexed_at
            RETURNING id
            """,
            (
                root_id, path, size, mtime_ns, content_hash, "error" if error else "ok", error,
                info.format, info.width, info.height, info.taken, int(info.taken_from_exif),
                int(info.has_gps), info.phash, info.sharpness, time.time(),
            ),
        ).fetchone()
        return int(row[0])

    def move_photo(self, photo_id: int, *, root_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        """A file renamed or moved: keep its row (id, metadata, embedding), change where it lives."""
        self.db.execute(
            "UPDATE photos SET root_id = ?, path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            (root_id, new_path, size, mtime_ns, photo_id),
        )

    def delete_photos(self, photo_ids: Iterable[int]) -> int:
        ids = list(photo_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            self.db.execute(f"DELETE FROM photos WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return len(ids)

    def photo_by_path(self, path: Path | str) -> Photo | None:
        row = self.db.execute(f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE path = ?", (str(path),)).fetchone()
        return None if row is None else _photo_from_row(row)

    def photos_by_ids(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        result: dict[int, Photo] = {}
        ids = [int(i) for i in photo_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            result.update((row["id"], _photo_from_row(row)) for row in rows)
        return result

    def known_hash(self, content_hash: str, model: str | None) -> tuple[PhotoInfo, bool] | None:
        """Metadata of a readable photo with these bytes, and whether it has a vector for ``model``.

        Lets the ingest pipeline skip decoding renamed, moved and copied files. Safe from any thread.
        """
        row = self.db.execute(
            f"SELECT {_PHOTO_COLUMNS}, EXISTS(SELECT 1 FROM embeddings e WHERE e.content_hash = photos.content_hash "
            "AND e.model = ?) AS embedded FROM photos WHERE content_hash = ? AND state = 'ok' LIMIT 1",
            (model or "", content_hash),
        ).fetchone()
        if row is None:
            return None
        return _photo_from_row(row).info, bool(row["embedded"])

    def iter_photos(self, *, only_ok: bool = True) -> Iterator[Photo]:
        sql = f"SELECT {_PHOTO_COLUMNS} FROM photos"
        if only_ok:
            sql += " WHERE state = 'ok'"
        for row in self.db.execute(sql + " ORDER BY id"):
            yield _photo_from_row(row)

    def failures(self) -> list[Failure]:
        rows = self.db.execute("SELECT path, error FROM photos WHERE state = 'error' ORDER BY path")
        return [Failure(Path(r["path"]), r["error"] or "unknown error") for r in rows]

    def counts(self, model: str | None) -> dict[str, int]:
        """Photos known, readable, failed, and (for a model) embedded and pending."""
        db = self.db
        total, ok = db.execute("SELECT COUNT(*), COALESCE(SUM(state = 'ok'), 0) FROM photos").fetchone()
        embedded = 0
        if model is not None:
            embedded = db.execute(
                "SELECT COUNT(*) FROM photos p JOIN embeddings e "
                "ON e.content_hash = p.content_hash AND e.model = ? WHERE p.state = 'ok'",
                (model,),
            ).fetchone()[0]
        return {
            "photos": int(total),
            "ok": int(ok),
            "failed": int(total) - int(ok),
            "embedded": int(embedded),
            "pending": int(ok) - int(embedded) if model is not None else int(ok),
        }

    # -- embeddings ---------------------------------------------------------------------------------

    def hashes_with_embedding(self, model: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT content_hash FROM embeddings WHERE model = ?", (model,))}

    def pending_photos(self, model: str) -> list[FileState]:
        """Readable photos with no vector for ``model`` (after a model change, say)."""
        rows = self.db.execute(
            "SELECT p.id, p.path, p.size, p.mtime_ns, p.content_hash, p.state FROM photos p "
            "LEFT JOIN embeddings e ON e.content_hash = p.content_hash AND e.model = ? "
            "WHERE p.state = 'ok' AND e.content_hash IS NULL ORDER BY p.path",
            (model,),
        )
        return [FileState(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def put_embeddings(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO embeddings(content_hash, model, vector) VALUES (?, ?, ?)",
            ((h, model, np.asarray(v, dtype=VECTOR_DTYPE).tobytes()) for h, v in items),
        )

    def vectors(
        self, model: str, photo_ids: Sequence[int] | None = None, *, dtype: np.dtype | type = np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int64[n], vectors[n, d])`` of readable photos embedded with ``model``, ordered by id.

        Args:
            photo_ids: only these photos (default: all).
            dtype: float16 returns the stored values without conversion: half the memory at a million
                photos, where the index builder works in chunks anyway.
        """
        sql = (
            "SELECT p.id, e.vector FROM photos p JOIN embeddings e "
            "ON e.content_hash = p.content_hash AND e.model = ? WHERE p.state = 'ok'"
        )
        if photo_ids is None:
            batches = [self.db.execute(sql + " ORDER BY p.id", (model,))]
        else:
            ids = sorted({int(i) for i in photo_ids})
            batches = [
                self.db.execute(
                    sql + f" AND p.id IN ({','.join('?' * len(chunk))}) ORDER BY p.id", (model, *chunk)
                )
                for chunk in (ids[start : start + 500] for start in range(0, len(ids), 500))
            ]
        id_list: list[int] = []
        blobs: list[bytes] = []
        for cursor in batches:
            for photo_id, blob in cursor:
                id_list.append(photo_id)
                blobs.append(blob)
        if not id_list:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=dtype)
        dim = len(blobs[0]) // VECTOR_DTYPE.itemsize
        matrix = np.empty((len(blobs), dim), dtype=dtype)
        for row, blob in enumerate(blobs):
            matrix[row] = np.frombuffer(blob, dtype=VECTOR_DTYPE)
        return np.asarray(id_list, dtype=np.int64), matrix

    def embedding_models(self) -> list[str]:
        """The models that have vectors in this catalog."""
        return [row[0] for row in self.db.execute("SELECT DISTINCT model FROM embeddings ORDER BY model")]

    def embedding_for_hash(self, model: str, content_hash: str) -> np.ndarray | None:
        row = self.db.execute(
            "SELECT vector FROM embeddings WHERE content_hash = ? AND model = ?", (content_hash, model)
        ).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=VECTOR_DTYPE).astype(np.float32)

    def prune_embeddings(self) -> int:
        """Drop vectors that no photo uses any more (files deleted for good)."""
        cur = self.db.execute(
            "DELETE FROM embeddings WHERE content_hash NOT IN "
            "(SELECT content_hash FROM photos WHERE content_hash IS NOT NULL)"
        )
        return cur.rowcount


_PHOTO_COLUMNS = (
    "id, root_id, path, size, mtime_ns, content_hash, state, error, format, width, height, taken, "
    "taken_from_exif, has_gps, phash, sharpness"
)


def _photo_from_row(row: sqlite3.Row) -> Photo:
    return Photo(
        id=row["id"],
        root_id=row["root_id"],
        path=Path(row["path"]),
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        content_hash=row["content_hash"],
        state=row["state"],
        error=row["error"],
        info=PhotoInfo(
            format=row["format"],
            width=row["width"],
            height=row["height"],
            taken=row["taken"],
            taken_from_exif=bool(row["taken_from_exif"]),
            has_gps=bool(row["has_gps"]),
            phash=row["phash"],
            sharpness=row["sharpness"],
        ),
    )


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
