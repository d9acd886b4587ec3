"""The catalog's schema, as ordered step migrations.

``PRAGMA user_version`` holds the schema version. Each step runs in one transaction with the version bump,
so a crash or a failing step leaves the catalog at the previous version, never half-migrated. Append new
steps at the end; never edit a released one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: roots, photos, embeddings keyed by content hash (so renames and identical copies share one).
    """
    CREATE TABLE roots (
        id        INTEGER PRIMARY KEY,
        path      TEXT    NOT NULL UNIQUE,
        protected INTEGER NOT NULL DEFAULT 0,
        added_at  REAL    NOT NULL
    );
    CREATE TABLE photos (
        id              INTEGER PRIMARY KEY,
        root_id         INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
        path            TEXT    NOT NULL UNIQUE,
        size            INTEGER NOT NULL,
        mtime_ns        INTEGER NOT NULL,
        content_hash    TEXT,
        state           TEXT    NOT NULL CHECK (state IN ('ok', 'error')),
        error           TEXT,
        format          TEXT,
        width           INTEGER,
        height          INTEGER,
        taken           REAL,
        taken_from_exif INTEGER NOT NULL DEFAULT 0,
        has_gps         INTEGER NOT NULL DEFAULT 0,
        phash           BLOB,
        sharpness       REAL,
        indexed_at      REAL    NOT NULL
    );
    CREATE INDEX photos_by_hash ON photos(content_hash);
    CREATE INDEX photos_by_root ON photos(root_id);
    CREATE INDEX photos_by_taken ON photos(taken);
    CREATE TABLE embeddings (
        content_hash TEXT NOT NULL,
        model        TEXT NOT NULL,
        vector       BLOB NOT NULL,
        PRIMARY KEY (content_hash, model)
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2 (dedup): "not duplicates" marks by content hash (renames keep them), folders protected from removal
    # beyond protected roots, and the journal of every move to the trash (for undo).
    """
    CREATE TABLE dedup_not_duplicates (
        hash_a  TEXT NOT NULL,
        hash_b  TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (hash_a, hash_b),
        CHECK (hash_a <= hash_b)
    ) WITHOUT ROWID;
    CREATE TABLE dedup_protected (
        path  TEXT PRIMARY KEY,
        added REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE dedup_batches (
        id        INTEGER PRIMARY KEY,
        created   REAL NOT NULL,
        undone_at REAL
    );
    CREATE TABLE dedup_trash_journal (
        id           INTEGER PRIMARY KEY,
        batch_id     INTEGER NOT NULL REFERENCES dedup_batches(id),
        path         TEXT    NOT NULL,
        size         INTEGER NOT NULL,
        mtime_ns     INTEGER NOT NULL,
        content_hash TEXT,
        kept_path    TEXT,
        trashed_at   REAL    NOT NULL,
        restored_at  REAL
    );
    CREATE INDEX dedup_trash_by_batch ON dedup_trash_journal(batch_id);
    """,
    # 3 (dedup journal-first): each trash journal row is written before its move ("moving") and marked after
    # it ("trashed"); undo likewise ("restoring" -> "restored"). The row records the exact trash slot, the
    # file's identity (device, inode) and, once closed, the outcome in words. Rows from before keep their
    # meaning: not restored = "trashed", restored = "restored".
    """
    ALTER TABLE dedup_trash_journal ADD COLUMN state TEXT NOT NULL DEFAULT 'trashed';
    ALTER TABLE dedup_trash_journal ADD COLUMN photo_id INTEGER;
    ALTER TABLE dedup_trash_journal ADD COLUMN dev INTEGER;
    ALTER TABLE dedup_trash_journal ADD COLUMN ino INTEGER;
    ALTER TABLE dedup_trash_journal ADD COLUMN trash_dir TEXT;
    ALTER TABLE dedup_trash_journal ADD COLUMN trash_name TEXT;
    ALTER TABLE dedup_trash_journal ADD COLUMN restored_path TEXT;
    ALTER TABLE dedup_trash_journal ADD COLUMN outcome TEXT;
    UPDATE dedup_trash_journal SET state = 'restored' WHERE restored_at IS NOT NULL;
    CREATE INDEX dedup_trash_by_state ON dedup_trash_journal(state);
    """,
    # 4 (keeper): what tells an original from its copies: the camera (EXIF make and model), the program that
    # last saved it and when (EXIF Software, DateTime), and JPEG traces in a lossless file's pixels. Photos
    # indexed before read NULL (unknown) until they are indexed again.
    """
    ALTER TABLE photos ADD COLUMN camera TEXT;
    ALTER TABLE photos ADD COLUMN software TEXT;
    ALTER TABLE photos ADD COLUMN modified REAL;
    ALTER TABLE photos ADD COLUMN jpeg_trace REAL;
    """,
    # 5 (live index): the change log the FAISS index is kept up to date from. Triggers log every photo whose
    # row appears, disappears, changes bytes or state, and every photo whose vector appears or disappears, so
    # no writer can change the searchable set without the index seeing it. The random nonce makes a log
    # position unrepeatable: a catalog rolled back (backup, lost WAL) that counts up to the same position
    # again has another nonce there, so an index built from the lost history is never taken for fresh.
    # Existing photos are logged once, so an index of an upgraded catalog is rebuilt from it.
    """
    CREATE TABLE vector_changes (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id INTEGER NOT NULL,
        nonce    INTEGER NOT NULL
    );
    CREATE TRIGGER vector_changes_photo_insert AFTER INSERT ON photos BEGIN
        INSERT INTO vector_changes(photo_id, nonce) VALUES (NEW.id, random());
    END;
    CREATE TRIGGER vector_changes_photo_update AFTER UPDATE OF content_hash, state ON photos
    WHEN OLD.content_hash IS NOT NEW.content_hash OR OLD.state IS NOT NEW.state BEGIN
        INSERT INTO vector_changes(photo_id, nonce) VALUES (NEW.id, random());
    END;
    CREATE TRIGGER vector_changes_photo_delete AFTER DELETE ON photos BEGIN
        INSERT INTO vector_changes(photo_id, nonce) VALUES (OLD.id, random());
    END;
    CREATE TRIGGER vector_changes_embedding_insert AFTER INSERT ON embeddings BEGIN
        INSERT INTO vector_changes(photo_id, nonce)
            SELECT id, random() FROM photos WHERE content_hash = NEW.content_hash;
    END;
    CREATE TRIGGER vector_changes_embedding_delete AFTER DELETE ON embeddings BEGIN
        INSERT INTO vector_changes(photo_id, nonce)
            SELECT id, random() FROM photos WHERE content_hash = OLD.content_hash;
    END;
    INSERT INTO vector_changes(photo_id, nonce) SELECT id, random() FROM photos;
    """,
    # 6 (fingerprint versions): the format version of each photo's fingerprint (photoembed.imaging.fingerprint
    # FORMAT_VERSION, also byte 0 of the blob), indexed, so that a sync finds the photos fingerprinted by an
    # older version without reading a blob and fingerprints them again (no CLIP, no re-read of unchanged
    # metadata). Filled from the blobs: at this step format 1 blobs are exactly 1,122 bytes and format 2 ones
    # longer, so length() (which reads no blob) tells them apart; any other blob is read for its first byte.
    """
    ALTER TABLE photos ADD COLUMN fingerprint_version INTEGER;
    UPDATE photos SET fingerprint_version = CASE
        WHEN phash IS NULL THEN NULL
        WHEN length(phash) > 1122 THEN 2
        ELSE unicode(CAST(substr(phash, 1, 1) AS TEXT))
    END;
    CREATE INDEX photos_by_fingerprint_version ON photos(fingerprint_version);
    """,
    # 7 (keeper): a JPEG's quantisation tables, as libjpeg's quality when they are its standard tables (a
    # re-save by most programs) or 0 for the encoder's own (a camera's). Photos indexed before read NULL
    # (unknown: no claim) until they are indexed again.
    """
    ALTER TABLE photos ADD COLUMN jpeg_tables INTEGER;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
