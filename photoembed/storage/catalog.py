"""The SQLite catalog: roots, photos, their metadata and their embeddings.

The catalog is the source of truth; the FAISS index is rebuilt from it. It runs in WAL mode so that readers
(search, the GUI) never wait for the indexing thread's writes, and every write batch is one transaction, so a
crash loses at most the batch in flight.

Thread contract: a :class:`Catalog` hands each thread its own connection, which lives as long as that
thread's thread-local storage: it is closed when the thread ends (or, for a thread Python did not start,
such as a Qt pool's, when the task that called into Python returns and its thread state goes), so pools
whose threads come and go never pile up connections; :meth:`Catalog.release` closes the calling thread's
at once.
Writes are meant to come from one thread (the one that owns the model and the index), which SQLite
serialises anyway.

Paths are stored losslessly: a file name that is not valid UTF-8 (Python gives it lone surrogates under
``surrogateescape``) is stored as the BLOB of its raw bytes and read back as the same ``str``.

Privacy: the catalog and its WAL and shared-memory files are created readable by their owner only
(0600), whatever the umask (SQLite gives the WAL and SHM files the database file's permissions).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np

from photoembed.errors import KnownError, NestedRootError
from photoembed.storage.records import Failure, FileState, Photo, PhotoInfo, Root
from photoembed.storage.schema import MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

VECTOR_DTYPE = np.dtype("<f2")  # float16 halves the catalog; CLIP cosine scores change by < 1e-3
FILE_MODE = 0o600


@dataclass
class VectorChanges:
    """The change-log entries after a position, read in one transaction with the vectors they point to.

    Attributes:
        last_seq: the newest log position (the given one when nothing changed).
        floor: log entries at or below this may have been pruned (a reader behind it must reload).
        changed: int64, sorted unique ids of the photos changed after the position (removed or not).
        ids: those of them that are readable and have a vector for the model now.
        vectors: float32[len(ids), d] their vectors.
    """

    last_seq: int
    floor: int
    changed: np.ndarray
    ids: np.ndarray
    vectors: np.ndarray


@dataclass
class VectorState:
    """Every vector of a model with the log position (and its nonce) they are current at."""

    last_seq: int
    nonce: int
    ids: np.ndarray
    vectors: np.ndarray


def db_path(path: str | os.PathLike[str]) -> str | bytes:
    """How a path is stored: as text, or as its raw bytes when it is not valid UTF-8."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def path_from_db(value: str | bytes) -> str:
    """The inverse of :func:`db_path`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


class _Connection:
    """A thread's connection, closed when the thread's local storage drops it (thread or task end)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __del__(self) -> None:
        self.close()


# -- connection accounting: every connection the catalog opens is registered until it is closed ----------


@dataclass(frozen=True)
class ConnectionInfo:
    """A catalog connection that was opened and not yet closed (see :func:`open_connections`).

    Attributes:
        serial: increasing number, in opening order (lets a test take a baseline).
        path: the database file.
        thread: name of the thread that opened it.
        opened_at: the callers that opened it, innermost first ("file:line in function; ...").
        collected: True once the connection object was garbage-collected without :meth:`close` being called
            (SQLite closed it then, at a moment nobody chose).
    """

    serial: int
    path: str
    thread: str
    opened_at: str
    collected: bool = False


_registry_lock = threading.Lock()
_serials = itertools.count(1)
_open: dict[int, ConnectionInfo] = {}


def open_connections() -> list[ConnectionInfo]:
    """Connections opened by a :class:`Catalog` and never closed, oldest first (tests use it to find leaks)."""
    with _registry_lock:
        return sorted(_open.values(), key=lambda info: info.serial)


def forget_connections(serials: Iterable[int]) -> None:
    """Drop entries from :func:`open_connections` (a test that reported them, so the next one starts clean)."""
    with _registry_lock:
        for serial in serials:
            _open.pop(serial, None)


def _callers(limit: int = 4) -> str:
    """Where a connection is opened from: the first frames outside this module, innermost first."""
    frames: list[str] = []
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and len(frames) < limit:
        if any(part in frame.f_code.co_filename for part in ("/_pytest/", "/pluggy/")):
            break  # the test runner's own frames say nothing about the leak
        if frame.f_code.co_filename != __file__:
            frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        frame = frame.f_back
    return "; ".join(frames)


def _collected_unclosed(serial: int) -> None:
    with _registry_lock:
        info = _open.get(serial)
        if info is not None:
            _open[serial] = ConnectionInfo(info.serial, info.path, info.thread, info.opened_at, collected=True)


class _TrackedConnection(sqlite3.Connection):
    """A connection that stays listed in :func:`open_connections` until :meth:`close` is called."""

    _serial = 0

    def close(self) -> None:
        super().close()
        with _registry_lock:
            _open.pop(self._serial, None)


def _connect(path: Path) -> _TrackedConnection:
    conn = sqlite3.connect(
        path, timeout=30.0, isolation_level=None, check_same_thread=False, factory=_TrackedConnection
    )
    serial = next(_serials)
    conn._serial = serial
    with _registry_lock:
        _open[serial] = ConnectionInfo(serial, str(path), threading.current_thread().name, _callers())
    weakref.finalize(conn, _collected_unclosed, serial)
    return conn


class Catalog:
    """Access to ``catalog.sqlite3``. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Catalog:
        """Open (creating and migrating as needed) the catalog at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(path)
        catalog = cls(path)
        try:
            catalog._migrate()
        except BaseException:
            catalog.close()  # a refused or failed migration must not leave the connection open
            raise
        return catalog

    # -- connections ------------------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        holder: _Connection | None = getattr(self._local, "conn", None)
        if holder is None:
            try:
                conn = _connect(self.path)
            except sqlite3.Error as exc:
                raise KnownError(f"Cannot open the catalog {self.path}: {exc}") from exc
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # durable at WAL checkpoints; safe with WAL
                conn.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                conn.close()  # a damaged or read-only catalog: never leave the connection behind
                raise
            conn.row_factory = sqlite3.Row
            holder = _Connection(conn)
            self._local.conn = holder
            with self._lock:
                self._connections.add(holder)
            for suffix in ("-wal", "-shm"):
                _make_private(self.path.with_name(self.path.name + suffix), create=False)
        return holder.conn

    @property
    def open_connections(self) -> int:
        """How many connections are open (tests and the soak benchmark watch this stay flat)."""
        with self._lock:
            return len(self._connections)

    def release(self) -> None:
        """Close the calling thread's connection (a task that ends); the next use opens a new one."""
        holder: _Connection | None = getattr(self._local, "conn", None)
        if holder is None:
            return
        self._local.conn = None
        with self._lock:
            self._connections.discard(holder)
        holder.close()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            holders = list(self._connections)
            self._connections = weakref.WeakSet()
        for holder in holders:
            holder.close()
        self._local = threading.local()

    @contextlib.contextmanager
    def read_transaction(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one state of the catalog (a WAL read snapshot)."""
        db = self.db
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

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
                "INSERT OR IGNORE INTO roots(path, protected, added_at) VALUES (?, 0, ?)", (db_path(path), time.time())
            )
        root = self.root_for_path(path)
        assert root is not None
        return root

    def remove_root(self, path: Path) -> int:
        """Forget a root and its photos (never touching files). Returns how many photos were forgotten."""
        path = path.resolve()
        with self.transaction() as db:
            row = db.execute("SELECT id FROM roots WHERE path = ?", (db_path(path),)).fetchone()
            if row is None:
                raise KnownError(f"{path} is not a folder of this library")
            count = db.execute("SELECT COUNT(*) FROM photos WHERE root_id = ?", (row[0],)).fetchone()[0]
            db.execute("DELETE FROM photos WHERE root_id = ?", (row[0],))
            db.execute("DELETE FROM roots WHERE id = ?", (row[0],))
        self.bump_generation()
        return int(count)

    def roots(self) -> list[Root]:
        rows = self.db.execute("SELECT id, path, protected FROM roots ORDER BY path").fetchall()
        return [Root(id=r["id"], path=Path(path_from_db(r["path"])), protected=bool(r["protected"])) for r in rows]

    def root_for_path(self, path: Path) -> Root | None:
        row = self.db.execute("SELECT id, path, protected FROM roots WHERE path = ?", (db_path(path),)).fetchone()
        if row is None:
            return None
        return Root(id=row["id"], path=Path(path_from_db(row["path"])), protected=bool(row["protected"]))

    def set_root_protected(self, path: Path, protected: bool) -> None:
        with self.transaction() as db:
            cur = db.execute("UPDATE roots SET protected = ? WHERE path = ?", (int(protected), db_path(path.resolve())))
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
            args = (db_path(folder), db_path(folder + "/"), db_path(folder + "0"), root_id)
        states = {}
        for r in self.db.execute(sql, args):
            path = path_from_db(r["path"])
            states[path] = FileState(r["id"], path, r["size"], r["mtime_ns"], r["content_hash"], r["state"])
        if under is not None and folder != db_path(folder):
            return states  # a folder whose own name is not UTF-8: everything in it is stored as bytes
        if under is not None:
            # Files with non-UTF-8 names below the folder are BLOBs, which sort after every text value.
            raw = os.fsencode(folder)
            blob_sql = (
                "SELECT id, path, size, mtime_ns, content_hash, state FROM photos "
                "WHERE path >= ? AND path < ? AND +root_id = ?"
            )
            for r in self.db.execute(blob_sql, (raw + b"/", raw + b"0", root_id)):
                path = path_from_db(r["path"])
                states[path] = FileState(r["id"], path, r["size"], r["mtime_ns"], r["content_hash"], r["state"])
        return states

    def root_counts(self) -> dict[int, tuple[int, int]]:
        """``{root_id: (readable, failed)}`` in one query (status and the sidebar refresh this often)."""
        rows = self.db.execute(
            "SELECT root_id, COALESCE(SUM(state = 'ok'), 0), COALESCE(SUM(state = 'error'), 0) "
            "FROM photos GROUP BY root_id"
        )
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def root_pending(self, model: str) -> dict[int, int]:
        """``{root_id: readable photos with no vector for model}`` in one query (the sidebar's per-folder count)."""
        rows = self.db.execute(
            "SELECT p.root_id, COUNT(*) FROM photos p "
            "LEFT JOIN embeddings e ON e.content_hash = p.content_hash AND e.model = ? "
            "WHERE p.state = 'ok' AND e.content_hash IS NULL GROUP BY p.root_id",
            (model,),
        )
        return {int(r[0]): int(r[1]) for r in rows}

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
                               height, taken, taken_from_exif, has_gps, phash, sharpness, indexed_at,
                               camera, software, modified, jpeg_trace, fingerprint_version, jpeg_tables)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(path) DO UPDATE SET
                root_id = excluded.root_id, size = excluded.size, mtime_ns = excluded.mtime_ns,
                content_hash = excluded.content_hash, state = excluded.state, error = excluded.error,
                format = excluded.format, width = excluded.width, height = excluded.height,
                taken = excluded.taken, taken_from_exif = excluded.taken_from_exif,
                has_gps = excluded.has_gps, phash = excluded.phash, sharpness = excluded.sharpness,
                indexed_at = excluded.indexed_at, camera = excluded.camera, software = excluded.software,
                modified = excluded.modified, jpeg_trace = excluded.jpeg_trace,
                fingerprint_version = excluded.fingerprint_version, jpeg_tables = excluded.jpeg_tables
            RETURNING id
            """,
            (
                root_id, db_path(path), size, mtime_ns, content_hash, "error" if error else "ok", error,
                info.format, info.width, info.height, info.taken, int(info.taken_from_exif),
                int(info.has_gps), info.phash, info.sharpness, time.time(),
                info.camera, info.software, info.modified, info.jpeg_trace,
                info.phash[0] if info.phash else None, info.jpeg_tables,
            ),
        ).fetchone()
        return int(row[0])

    def move_photo(self, photo_id: int, *, root_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        """A file renamed or moved: keep its row (id, metadata, embedding), change where it lives."""
        self.db.execute(
            "UPDATE photos SET root_id = ?, path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            (root_id, db_path(new_path), size, mtime_ns, photo_id),
        )

    def delete_photos(self, photo_ids: Iterable[int]) -> int:
        ids = list(photo_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            self.db.execute(f"DELETE FROM photos WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return len(ids)

    def photo_by_path(self, path: Path | str) -> Photo | None:
        row = self.db.execute(f"SELECT {_PHOTO_COLUMNS} FROM photos WHERE path = ?", (db_path(path),)).fetchone()
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
        return [Failure(Path(path_from_db(r["path"])), r["error"] or "unknown error") for r in rows]

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
        # NOT IN builds one in-memory set of the model's hashes. A join probed the embeddings table once per
        # photo, each probe landing on rows of about 1 KB (the vectors): 0.18 s at 10k photos against 0.06 s.
        rows = self.db.execute(
            "SELECT id, path, size, mtime_ns, content_hash, state FROM photos WHERE state = 'ok' AND "
            "(content_hash IS NULL OR content_hash NOT IN (SELECT content_hash FROM embeddings WHERE model = ?)) "
            "ORDER BY path",
            (model,),
        )
        return [FileState(r[0], path_from_db(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    # -- fingerprints -------------------------------------------------------------------------------

    def stale_fingerprints(self, version: int, *, root_id: int | None = None) -> list[FileState]:
        """Readable photos whose fingerprint is older than format ``version`` (or missing), one indexed query."""
        # Two lookups on the version index, sorted here: with ORDER BY path (or an OR over the column) SQLite
        # walks the whole table in path order, which every watch batch paid at 1M photos (seconds each).
        root = " AND +root_id = ?" if root_id is not None else ""
        head = ("SELECT id, path, size, mtime_ns, content_hash, state FROM photos "
                "INDEXED BY photos_by_fingerprint_version")
        sql = (
            f"{head} WHERE fingerprint_version < ? AND state = 'ok'{root} "
            f"UNION ALL {head} WHERE fingerprint_version IS NULL AND state = 'ok'{root}"
        )
        args: tuple[object, ...] = (version, root_id, root_id) if root_id is not None else (version,)
        states = [FileState(r[0], path_from_db(r[1]), r[2], r[3], r[4], r[5]) for r in self.db.execute(sql, args)]
        return sorted(states, key=lambda state: state.path)

    def stale_fingerprint_count(self, version: int) -> int:
        """How many readable photos have a fingerprint older than format ``version`` (or none)."""
        # The same two lookups on the version index as :meth:`stale_fingerprints`: the app asks with every
        # snapshot, and an OR over the column would count by walking the whole table.
        head = "SELECT COUNT(*) FROM photos INDEXED BY photos_by_fingerprint_version"
        row = self.db.execute(
            f"SELECT ({head} WHERE fingerprint_version < ? AND state = 'ok') + "
            f"({head} WHERE fingerprint_version IS NULL AND state = 'ok')",
            (version,),
        ).fetchone()
        return int(row[0])

    def set_fingerprint(self, content_hash: str, info: PhotoInfo) -> int:
        """A new fingerprint (``info.phash``, ``info.sharpness``) for every readable photo with these bytes.

        The keeper's facts that only the bytes decide (camera, software, EXIF DateTime, JPEG traces and tables)
        are refreshed with it: rows from before those were catalogued (NULL) or measured as now gain them. Path,
        times and everything else stay.
        """
        if not info.phash:
            raise ValueError("no fingerprint to store")
        cur = self.db.execute(
            "UPDATE photos SET phash = ?, sharpness = ?, fingerprint_version = ?, camera = ?, software = ?, "
            "modified = ?, jpeg_trace = ?, jpeg_tables = ? WHERE content_hash = ? AND state = 'ok'",
            (info.phash, info.sharpness, info.phash[0], info.camera, info.software, info.modified, info.jpeg_trace,
             info.jpeg_tables, content_hash),
        )
        return cur.rowcount

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

    def embedded_count(self, model: str) -> int:
        """Readable photos with a vector for ``model``."""
        return self.counts(model)["embedded"]

    # -- the change log the vector index follows (see photoembed.storage.vector_index) ------------------

    def _change_floor(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'vector_changes_floor'").fetchone()
        return int(row[0]) if row is not None else 0

    def _last_change(self, db: sqlite3.Connection) -> tuple[int, int]:
        row = db.execute("SELECT seq, nonce FROM vector_changes ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return self._change_floor(db), 0
        return int(row[0]), int(row[1])

    def vector_changes(self, model: str, since: int) -> VectorChanges:
        """The photos changed after log position ``since`` and their current vectors, in one read."""
        with self.read_transaction() as db:
            floor = self._change_floor(db)
            rows = db.execute("SELECT seq, photo_id FROM vector_changes WHERE seq > ?", (since,)).fetchall()
            if not rows:
                return VectorChanges(
                    max(since, 0), floor, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
                )
            last_seq = max(int(r[0]) for r in rows)
            changed = np.unique(np.fromiter((int(r[1]) for r in rows), dtype=np.int64, count=len(rows)))
            ids, vectors = self.vectors(model, changed.tolist())
        return VectorChanges(last_seq, floor, changed, ids, vectors)

    def last_change_seq(self) -> int:
        """The newest log position."""
        return self._last_change(self.db)[0]

    def oldest_change_seq(self) -> int:
        """The oldest log position still in the log (a huge number when it is empty)."""
        row = self.db.execute("SELECT MIN(seq) FROM vector_changes").fetchone()
        return int(row[0]) if row[0] is not None else 2**62

    def vector_change_count(self, since: int) -> int:
        """Log entries after position ``since``."""
        return int(self.db.execute("SELECT COUNT(*) FROM vector_changes WHERE seq > ?", (since,)).fetchone()[0])

    def change_nonce(self, seq: int) -> int | None:
        """The nonce of log entry ``seq`` (0 for position 0), or None when there is no such entry."""
        if seq == 0:
            return 0
        row = self.db.execute("SELECT nonce FROM vector_changes WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else int(row[0])

    def change_is_known(self, seq: int, nonce: int) -> bool:
        """Whether log position ``seq`` with ``nonce`` is part of this catalog's history, with every entry
        after it still in the log (an index built there can be brought up to date from the log)."""
        if seq == 0:
            return nonce == 0 and self._change_floor(self.db) == 0
        return self.change_nonce(seq) == nonce

    def vectors_at_change(self, model: str) -> VectorState:
        """Every vector of ``model`` and the log position they are current at (one read transaction)."""
        with self.read_transaction() as db:
            last_seq, nonce = self._last_change(db)
            ids, vectors = self.vectors(model, dtype=np.float16)
        return VectorState(last_seq, nonce, ids, vectors)

    def prune_vector_changes(self, *, below: int) -> int:
        """Forget log entries before position ``below`` (an index was persisted at or after it)."""
        with self.transaction() as db:
            cur = db.execute("DELETE FROM vector_changes WHERE seq < ?", (below,))
            floor = max(self._change_floor(db), below - 1)
            db.execute(
                "INSERT INTO meta(key, value) VALUES ('vector_changes_floor', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(floor),),
            )
        return cur.rowcount

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
    "taken_from_exif, has_gps, phash, sharpness, camera, software, modified, jpeg_trace, jpeg_tables"
)


def _photo_from_row(row: sqlite3.Row) -> Photo:
    return Photo(
        id=row["id"],
        root_id=row["root_id"],
        path=Path(path_from_db(row["path"])),
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
            camera=row["camera"],
            software=row["software"],
            modified=row["modified"],
            jpeg_trace=row["jpeg_trace"],
            jpeg_tables=row["jpeg_tables"],
        ),
    )


def _split_sql(script: str) -> list[str]:
    """The statements of a migration script (a trigger's body holds semicolons of its own)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _make_private(path: Path, *, create: bool = True) -> None:
    """Make ``path`` readable by its owner only; create it empty first (0600) when asked and missing."""
    try:
        if create:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
            os.close(fd)
        if path.exists() and (path.stat().st_mode & 0o777) != FILE_MODE:
            os.chmod(path, FILE_MODE)
    except OSError as exc:
        logger.debug("Cannot make %s private: %s", path, exc)
