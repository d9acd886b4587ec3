"""Parts of a library folder that are offline, and the mount points below each folder, kept in the catalog.

The indexer records here every :class:`~photoembed.core.scanner.ScanGap` a scan met (an unreadable folder,
an unplugged drive's mount point) and every mount point it saw, so that the next scan knows which folders
are drives (``expected_mounts``) and ``status`` can say which photos are kept offline and why. Stored as
JSON in the catalog's ``meta`` table, one key per root; derived, so a lost value only costs one scan's
knowledge.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class MetaStore(Protocol):
    """What this needs of the catalog (photoembed.storage.catalog.Catalog)."""

    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class OfflineFolder:
    """A folder below a root whose photos are kept although it cannot be seen now."""

    root_id: int
    path: str
    reason: str


def _inside(path: str, folder: str) -> bool:
    return path == folder or Path(folder) in Path(path).parents


class OfflineRegistry:
    """Read and update the offline folders and known mount points of each root."""

    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta

    def mounts(self, root_id: int) -> set[str]:
        return set(self._load_list(f"root_mounts:{root_id}"))

    def offline(self, root_id: int) -> list[OfflineFolder]:
        return [OfflineFolder(root_id, p, r) for p, r in sorted(self._load_dict(f"offline_folders:{root_id}").items())]

    def record(
        self,
        root_id: int,
        *,
        scope: str | None,
        gaps: Iterable[tuple[str, str]],
        mounts: Iterable[str],
    ) -> None:
        """Replace what is known under ``scope`` (None: the whole root) by what this scan saw.

        Mount points that are offline stay known as mount points (so they are still a drive next time).
        """
        gap_map = dict(gaps)
        old_gaps = self._load_dict(f"offline_folders:{root_id}")
        kept_gaps = {p: r for p, r in old_gaps.items() if scope is not None and not _inside(p, scope)}
        new_gaps = kept_gaps | gap_map
        old_mounts = set(self._load_list(f"root_mounts:{root_id}"))
        new_mounts = {m for m in old_mounts if scope is not None and not _inside(m, scope)}
        new_mounts |= set(mounts)
        new_mounts |= {m for m in old_mounts if m in gap_map}
        if new_gaps != old_gaps:
            self.meta.set_meta(f"offline_folders:{root_id}", json.dumps(new_gaps, sort_keys=True))
        if new_mounts != old_mounts:
            self.meta.set_meta(f"root_mounts:{root_id}", json.dumps(sorted(new_mounts)))

    def _load_list(self, key: str) -> list[str]:
        value = self._load(key)
        return [str(v) for v in value] if isinstance(value, list) else []

    def _load_dict(self, key: str) -> dict[str, str]:
        value = self._load(key)
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def _load(self, key: str) -> object:
        raw = self.meta.get_meta(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            logger.warning("Ignoring an unreadable %s in the catalog", key)
            return None
