"""Records the duplicate finder hands to front ends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Tiers from tightest to loosest.
TIERS: tuple[str, ...] = ("identical", "same", "similar")

#: The tiers whose suggestions may be moved to the trash in bulk ("Move all suggested", ``--trash-suggested``):
#: copies of one photo. Similar shots are different photos: they are reviewed one cluster at a time.
BULK_TIERS: tuple[str, ...] = ("identical", "same")

TIER_TITLES = {
    "identical": "Identical files",
    "same": "Same photo, other file",
    "similar": "Similar shots",
}


@dataclass(frozen=True)
class DedupProgress:
    """One progress step of a long duplicate job."""

    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class ClusterPhoto:
    """One photo of a cluster, as listed.

    Attributes:
        keep: the suggestion: keep this one (the keeper, or in a protected folder).
        reason: why, in words.
        match: how it relates to the keeper: "keeper", "identical", "same" or "similar".
        score: the strength of that relation (1.0 for identical copies and the keeper).
        protected: lies in a protected folder (never proposed for removal).
        label: what this file is, relative to the keeper, in a few words: "exact copy", "resized 50%",
            "re-encoded", "cropped", "edited", "similar 0.95" ("" for the keeper). The service fills it
            (photoembed.dedup.labels); a matcher that measured more may give a more precise one.
    """

    photo_id: int
    path: Path
    size: int
    mtime_ns: int
    content_hash: str | None
    keep: bool
    reason: str
    match: str
    score: float
    protected: bool
    label: str = ""


@dataclass(frozen=True)
class Cluster:
    """A group of photos of one tier; ``photos[0]`` is the suggested keeper."""

    tier: str
    photos: tuple[ClusterPhoto, ...]

    @property
    def removable(self) -> tuple[ClusterPhoto, ...]:
        return tuple(p for p in self.photos if not p.keep)

    @property
    def bulk(self) -> bool:
        """Whether "move all suggested to the trash" may take this cluster's suggestions (see BULK_TIERS)."""
        return self.tier in BULK_TIERS


@dataclass(frozen=True)
class TrashItem:
    """A file to move to the trash, as it was when listed (re-checked before it moves)."""

    photo_id: int
    path: Path
    size: int
    mtime_ns: int
    content_hash: str | None
    kept: tuple[Path, ...]  # the cluster's kept photos: one must still be there
    kept_hashes: tuple[str | None, ...] = ()  # their content hashes as listed (re-read and compared at execution)
    #: The user chose this very photo for the trash (a selection in the app), knowing it may be the only copy:
    #: it needs no kept copy. Duplicate removal never sets it.
    chosen_by_user: bool = False


@dataclass(frozen=True)
class TrashPlan:
    """What ``execute`` would move, and the space it frees."""

    items: tuple[TrashItem, ...]

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.items)

    @property
    def files(self) -> int:
        return len(self.items)
