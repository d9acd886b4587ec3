"""The three tiers of duplicates, computed on columnar arrays (no catalog, no files: testable and benchable).

1. identical: same size and content hash.
2. same photo, other file: identical groups collapse to one node; candidates come from nearest neighbours of
   the 8x8 grey layout of each photo's content box (queried with crop windows up to 25 % and 3-6 degree
   turns, both cut from the 32x32 thumbnail, and the 7 rotations and mirrors, so a crop or a turned copy
   finds its original) and, when vectors exist, of the CLIP vectors;
   a pair is confirmed by PDQ distance, a rotation/mirror of the thumbnail, or local features under one
   geometric transform (photoembed.dedup.match.verify_features), never by a hash alone for a low-contrast
   photo, and, when both have vectors, must also be CLIP-similar. Clusters are stars around the likely
   original (photoembed.dedup.cluster.star_clusters).
3. similar shots: the tier-2 clusters collapse to one node; CLIP cosine >= threshold, optionally within a
   time window.

The similar-shots stage clusters with complete link, the same-photo stage with stars, so nothing chains.
A cluster's tier is
the loosest tier that links its members. Each photo is in at most one cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from photoembed.dedup import match
from photoembed.dedup.cluster import complete_link_clusters, star_clusters
from photoembed.dedup.neighbours import NeighbourIndex, knn_pairs, unique_pairs
from photoembed.dedup.records import TIERS, DedupProgress
from photoembed.errors import Cancelled
from photoembed.imaging.fingerprint import THUMB_SIDE, ParsedFingerprint

logger = logging.getLogger(__name__)

LAYOUT_K = 6
LAYOUT_MIN_COS = 0.85
#: Crop windows (fraction cropped, offset) per axis used to query the layout index. 10 % crops at both ends of
#: an axis need their own window: a centred 12 % window missed corner crops of some scenes (layout cos < 0.85).
WINDOW_PARAMS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (0.1, 0.0),
    (0.1, 0.1),
    (0.2, 0.0),
    (0.2, 0.2),
    (0.25, 0.0),
    (0.25, 0.125),
    (0.25, 0.25),
)
#: Above this many photos the layout index is queried with the whole photo only: crop windows and rotations
#: multiply the queries by 32, which a library this large cannot afford on two cores (its crops are still
#: found through CLIP neighbours when the model is present).
WINDOW_QUERY_LIMIT = 30_000
CLIP_CANDIDATE_COS = 0.9
#: A hash- or alignment-confirmed pair whose CLIP vectors disagree this much is not the same photo.
SAME_MIN_COS = 0.8
SIMILAR_K = 16
#: Small rotations (a "straightened" copy, corners black) the layout index is also queried with, from the
#: thumbnail; 3-6 degree turns scored 0.82-0.88 against their original's plain layout, 0.93+ against these.
TURN_QUERIES_DEG = (-6.0, -3.0, 3.0, 6.0)


@dataclass
class FingerprintTable:
    """Per-photo columns, row-aligned.

    Attributes:
        sizes: file sizes (int64).
        content_hashes: content hash per row (None: unknown).
        quality: PDQ quality per row (0 where the photo has no fingerprint).
        pdq: uint8 [n, 32] PDQ hashes.
        layout: uint8 [n, 64] 8x8 grey layouts.
        taken: capture time per row (NaN: unknown).
        exposure: the capture time each photo's own EXIF records, to the sub-second when it has one (NaN:
            none). Two photos whose EXIF records different exposures are never the same photo (see
            :func:`different_exposures`), however alike their pixels: a burst or a tripod series.
        thumbs: loads the 32x32 thumbnails of some rows (called only for pairs that need alignment).
        vectors: unit CLIP vectors [n, d] (rows without one are all-zero), or None.
        has_vector: which rows have a vector.
        details: loads the whole parsed fingerprints of some rows (thumbnail, local features, the
            low-contrast flag); None: only ``thumbs`` (no local-feature check).
    """

    sizes: np.ndarray
    content_hashes: list[str | None]
    quality: np.ndarray
    pdq: np.ndarray
    layout: np.ndarray
    taken: np.ndarray
    thumbs: Callable[[Sequence[int]], dict[int, np.ndarray]]
    vectors: np.ndarray | None = None
    has_vector: np.ndarray | None = None
    details: Callable[[Sequence[int]], dict[int, ParsedFingerprint]] | None = None
    exposure: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sizes)


#: Capture times this close are one exposure (EXIF keeps milliseconds at best; a re-save copies the tags).
SAME_EXPOSURE_S = 0.0005
#: Two records of one exposure can differ by a whole time-zone offset (a copy that lost OffsetTimeOriginal is
#: read as local time): offsets are multiples of 15 minutes.
ZONE_STEP_S = 900.0


def different_exposures(a: float, b: float) -> bool:
    """Whether two EXIF capture times are two shutter releases (a burst, a series), not one photo's copies.

    Unknown times (NaN) never say so; neither do times a whole number of 15-minute steps apart (a copy whose
    time-zone tag was lost or changed). A copy whose capture time was edited by hand is then not "the same
    photo": it can still be found as a similar shot, reviewed by a person, never bulk-trashed.
    """
    if not (np.isfinite(a) and np.isfinite(b)):
        return False
    gap = abs(a - b)
    off_step = gap % ZONE_STEP_S
    return gap > SAME_EXPOSURE_S and min(off_step, ZONE_STEP_S - off_step) > SAME_EXPOSURE_S


@dataclass(frozen=True)
class RawCluster:
    tier: str
    rows: list[int]


@dataclass
class EngineOptions:
    """What to find. ``tier`` is the loosest tier wanted (None: the loosest available)."""

    tier: str | None = None
    similar_threshold: float = 0.92
    time_window_s: float | None = None
    marked: Callable[[str, str], bool] = field(default=lambda a, b: False)
    cancel: threading.Event | None = None


class DuplicateEngine:
    """Runs the tiers over a :class:`FingerprintTable`. One use per instance."""

    def __init__(self, table: FingerprintTable, options: EngineOptions) -> None:
        self.t = table
        self.o = options
        self._thumb_cache: dict[int, np.ndarray] = {}
        self._detail_cache: dict[int, ParsedFingerprint | None] = {}
        self._stack_cache: dict[int, np.ndarray | None] = {}
        #: Local-feature checks run and their total time (``bench dedup-eval`` reports the cost per pair).
        self.feature_checks = 0
        self.feature_seconds = 0.0
        self._verdicts: dict[tuple[int, int], float | None] = {}
        empty = np.zeros(0, dtype=np.int64)
        self._clip: tuple[np.ndarray, np.ndarray, np.ndarray] = (empty, empty, np.zeros(0, dtype=np.float32))

    # -- public -------------------------------------------------------------------------------------

    def run(self) -> Generator[DedupProgress, None, list[RawCluster]]:
        tier = self.o.tier
        has_vectors = self.t.vectors is not None and self.t.has_vector is not None and bool(self.t.has_vector.any())
        if tier is None:
            tier = "similar" if has_vectors else "same"
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        if has_vectors and tier in ("same", "similar"):
            yield from self._clip_neighbours(tier)
        yield self._progress("identical", 0, 1)
        nodes = self._identical_nodes()
        yield self._progress("identical", 1, 1)
        if tier in ("same", "similar"):
            groups = yield from self._same_clusters(nodes)
            nodes = nodes.merged(groups, label="same")
        if tier == "similar" and has_vectors:
            groups = yield from self._similar_clusters(nodes)
            nodes = nodes.merged(groups, label="similar")
        return [RawCluster(nodes.labels[k], rows) for k, rows in sorted(nodes.multi.items())]

    def pair_tier(self, a: int, b: int) -> tuple[str, float] | None:
        """How two rows relate (for the keeper's "score" column): the tightest tier and its score."""
        t = self.t
        same_bytes = t.content_hashes[a] is not None and t.content_hashes[a] == t.content_hashes[b]
        if same_bytes and t.sizes[a] == t.sizes[b]:
            return "identical", 1.0
        verdict = self._verify(a, b)
        if verdict is not None:
            return "same", verdict
        if t.vectors is not None and t.has_vector is not None and t.has_vector[a] and t.has_vector[b]:
            return "similar", float(np.dot(t.vectors[a].astype(np.float32), t.vectors[b].astype(np.float32)))
        return None

    # -- stages -------------------------------------------------------------------------------------

    def _identical_nodes(self) -> _Nodes:
        """One node per group of same size and content hash, in order of first row; rows without a hash last."""
        n = len(self.t)
        groups: dict[tuple[int, str], int] = {}
        gid = np.fromiter(
            (
                -1 if digest is None else groups.setdefault((size, digest), len(groups))
                for size, digest in zip(self.t.sizes.tolist(), self.t.content_hashes, strict=True)
            ),
            dtype=np.int64,
            count=n,
        )
        rows = np.arange(n, dtype=np.int64)
        major = np.where(gid >= 0, gid, len(groups) + rows)
        minor = np.zeros(n, dtype=np.int64)
        counts = np.bincount(gid[gid >= 0], minlength=len(groups))
        copied = np.flatnonzero(counts > 1)
        if len(copied):
            order = np.argsort(gid, kind="stable")
            starts = np.searchsorted(gid[order], copied)
            for g, start in zip(copied.tolist(), starts.tolist(), strict=True):
                members = order[start : start + counts[g]]
                digest = self.t.content_hashes[int(members[0])]
                if digest is not None and self.o.marked(digest, digest):
                    minor[members] = members + 1  # "these copies are not duplicates": each its own node, in place
        _, node_of = np.unique(major * (n + 1) + minor, return_inverse=True)
        return _Nodes.from_labels(node_of.astype(np.int64), label="identical")

    def _same_clusters(self, nodes: _Nodes) -> Generator[DedupProgress, None, list[list[int]]]:
        t = self.t
        reps = nodes.rep
        eligible = np.flatnonzero(t.quality[reps] >= match.MIN_QUALITY)
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if len(eligible) >= 2:
            yield self._progress("same photo: neighbours", 0, len(eligible))
            layouts = _unit_rows(t.layout[reps[eligible]].astype(np.float32))
            windows = _window_matrices()
            index = NeighbourIndex(layouts)
            windowed_rows = len(eligible) <= WINDOW_QUERY_LIMIT
            # The crop windows and small rotations are cut from the 32x32 thumbnails when stored (an 8x8
            # layout cropped and resampled is too coarse: a 25 % centre crop scored 0.71-0.84 against its
            # original's window, 0.997 from the thumbnail).
            thumbs = self._thumbs(reps[eligible].tolist()) if windowed_rows else {}
            thumb_windows, turn_maps = _thumb_window_matrices(), _turn_matrices()

            def window_queries(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
                rows = reps[eligible[start:stop]]
                grids = t.layout[rows].astype(np.float32).reshape(-1, 8, 8)
                crops = np.einsum("yab,nbc,xdc->nyxad", windows, grids, windows, optimize=True).reshape(
                    len(grids), -1, 64
                )
                have = np.array([int(r) in thumbs for r in rows.tolist()], dtype=bool)
                tilts = np.zeros((len(grids), len(turn_maps), 64), dtype=np.float32)
                if have.any():
                    fine = np.stack([thumbs[int(r)] for r in rows[have].tolist()]).astype(np.float32)
                    half = np.einsum("nbc,xdc->nxbd", fine, thumb_windows, optimize=True)
                    crops[have] = np.einsum("yab,nxbd->nyxad", thumb_windows, half, optimize=True).reshape(
                        len(fine), -1, 64
                    )
                    tilts[have] = np.einsum("kij,nj->nki", turn_maps, fine.reshape(len(fine), -1), optimize=True)
                tilts[~have] = crops[~have, :1]  # no thumbnail: the whole layout stands in (a repeat query)
                # The 7 rotations and mirrors of the whole photo find rotated copies.
                turns = [np.rot90(grids, k, axes=(1, 2)) for k in range(4)]
                flips = [t.transpose(0, 2, 1) for t in turns]
                dihedral = np.stack([*turns[1:], *flips], axis=1).reshape(len(grids), -1, 64)
                q = _unit_rows(np.concatenate([crops, dihedral, tilts], axis=1).reshape(-1, 64))
                owners = np.repeat(np.arange(start, stop, dtype=np.int64), q.shape[0] // len(grids))
                return owners, q

            # Beyond the limit each photo queries with itself only: a self-join (see WINDOW_QUERY_LIMIT).
            windowed = window_queries if windowed_rows else None
            for lo, hi, cos, done in knn_pairs(
                layouts, k=LAYOUT_K, min_cos=LAYOUT_MIN_COS, index=index, queries=windowed
            ):
                chunks.append((eligible[lo], eligible[hi], cos))
                yield self._progress("same photo: neighbours", done, len(eligible))
        node_of = nodes.node_of
        ri, rj, rc = self._clip
        strong = rc >= CLIP_CANDIDATE_COS
        ni, nj = node_of[ri[strong]], node_of[rj[strong]]
        differ = ni != nj
        chunks.append((ni[differ], nj[differ], rc[strong][differ]))
        ci, cj, _ = unique_pairs(chunks)
        ci, cj = np.minimum(ci, cj), np.maximum(ci, cj)
        ci, cj, _ = unique_pairs([(ci, cj, np.zeros(len(ci), dtype=np.float32))])
        # Cheap vectorised PDQ test and CLIP cosines first; alignment only for what they leave.
        dist = _pdq_distances(t.pdq, reps[ci], reps[cj])
        cos = self._cosines(reps[ci], reps[cj])
        edges_i: list[int] = []
        edges_j: list[int] = []
        scores: list[float] = []
        total = len(ci)
        # PDQ-close pairs first: a near-identical copy (resize, re-encode: a PDQ "twin") then inherits its
        # twin's confirmation against a third photo instead of matching keypoints again (a miss is checked
        # again). A photo's resizes and re-encodes are most of a family: this saves most feature checks.
        twins: dict[int, list[int]] = {}
        node_verdicts: dict[tuple[int, int], float | None] = {}
        adjacent: dict[int, set[int]] = {}
        families = _Families()
        unverified: list[tuple[int, int]] = []
        for done, k in enumerate(np.argsort(dist, kind="stable").tolist()):
            if done % 2048 == 0:
                yield self._progress("same photo: confirming", done, total)
            a, b = int(ci[k]), int(cj[k])
            if self._nodes_marked(nodes.rows(a), nodes.rows(b)):
                continue
            ra, rb = int(reps[a]), int(reps[b])
            if self._two_exposures(ra, rb):
                continue  # a burst's frames: never the same photo, whatever a twin's confirmation says
            inherited = self._inherited(a, b, twins, node_verdicts, float(cos[k]))
            if inherited is not None:
                verdict = inherited[0]
                self._verdicts[(min(ra, rb), max(ra, rb))] = verdict
            elif dist[k] > match.PDQ_STRICT and not adjacent.get(a, _NONE).isdisjoint(adjacent.get(b, _NONE)):
                # Both already confirmed with one photo: one family, whose star needs each of them matched
                # with its centre, not with each other (star_clusters checks a missing centre link on demand).
                # A quarter of the checks within the families of ``bench dedup-eval --hard 20``, same clusters.
                continue
            elif dist[k] > match.PDQ_STRICT and families.turned_down(a, b):
                # Two families of FAMILY_MIN photos or more, and a pair between them already checked and
                # turned down: two different photos. Their other pairs stay unverified unless the stars
                # consume one (a left-over copy about to join a cluster has them checked; see star_clusters).
                # 60 % fewer feature checks in ``bench dedup-eval --hard 80`` (6356 -> 2573), same clusters.
                unverified.append((a, b))
                continue
            else:
                verdict = self._verify(ra, rb, pdq_distance=int(dist[k]), cos=float(cos[k]))
                if verdict is not None and dist[k] <= match.PDQ_STRICT and not self._low_contrast(ra, rb):
                    twins.setdefault(a, []).append(b)
                    twins.setdefault(b, []).append(a)
            node_verdicts[(a, b)] = verdict
            families.record(a, b, confirmed=verdict is not None)
            if verdict is not None:
                adjacent.setdefault(a, set()).add(b)
                adjacent.setdefault(b, set()).add(a)
                edges_i.append(a)
                edges_j.append(b)
                scores.append(verdict)
        yield self._progress("same photo: confirming", total, total)

        def link(a: int, b: int) -> bool:
            if self._nodes_marked(nodes.rows(a), nodes.rows(b)):
                return False
            return self._verify(int(reps[a]), int(reps[b])) is not None

        # The largest file first among equally connected nodes: the original rather than a crop of it.
        return star_clusters(
            len(nodes),
            np.array(edges_i, dtype=np.int64),
            np.array(edges_j, dtype=np.int64),
            np.array(scores, dtype=np.float32),
            link=link,
            rank=t.sizes[reps].astype(np.float64),
            apart=lambda x, y: self._two_exposures(int(reps[x]), int(reps[y])),
            unverified=unverified,
        )

    def _similar_clusters(self, nodes: _Nodes) -> Generator[DedupProgress, None, list[list[int]]]:
        vec_rows = self._vector_nodes(nodes)
        if vec_rows is None:
            return []
        node_ids, vec_row = vec_rows
        window = self.o.time_window_s
        threshold = self.o.similar_threshold
        reps_taken = self._nodes_taken(nodes, node_ids) if window else None

        def within(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            if reps_taken is None:
                return np.ones(len(a), dtype=bool)
            return np.abs(reps_taken[a] - reps_taken[b]) <= window  # NaN (unknown time) compares False

        # Row pairs from the one CLIP neighbour search, moved onto these nodes and re-scored between the
        # nodes' representatives (what the on-demand links below compare too).
        local_of = np.full(len(nodes), -1, dtype=np.int64)
        local_of[node_ids] = np.arange(len(node_ids))
        node_of = nodes.node_of
        ri, rj, _ = self._clip
        li, lj = local_of[node_of[ri]], local_of[node_of[rj]]
        ok = (li >= 0) & (lj >= 0) & (li != lj)
        li, lj = np.minimum(li[ok], lj[ok]), np.maximum(li[ok], lj[ok])
        chunks = []
        for start in range(0, len(li), 65536):
            a, b = li[start : start + 65536], lj[start : start + 65536]
            cos = self._cosines(vec_row[a], vec_row[b])
            good = (cos >= threshold) & within(a, b)
            chunks.append((a[good], b[good], cos[good].astype(np.float32)))
        yield self._progress("similar shots", len(li), len(li))
        li, lj, ls = unique_pairs(chunks)
        keep = np.array(
            [
                not self._nodes_marked(nodes.rows(int(node_ids[a])), nodes.rows(int(node_ids[b])))
                for a, b in zip(li.tolist(), lj.tolist(), strict=True)
            ],
            dtype=bool,
        )
        li, lj, ls = li[keep], lj[keep], ls[keep]

        def link(a: int, b: int) -> bool:
            if self._nodes_marked(nodes.rows(int(node_ids[a])), nodes.rows(int(node_ids[b]))):
                return False
            if not within(np.array([a]), np.array([b]))[0]:
                return False
            return float(self._cosines(vec_row[[a]], vec_row[[b]])[0]) >= threshold

        local = complete_link_clusters(len(node_ids), li, lj, ls, link=link)
        return [[int(node_ids[x]) for x in group] for group in local]

    def _clip_neighbours(self, tier: str) -> Generator[DedupProgress, None, None]:
        """One CLIP neighbour search for both tiers (candidates of tier 2, links of tier 3), row pairs."""
        t = self.t
        if t.vectors is None or t.has_vector is None:
            return
        rows = np.flatnonzero(t.has_vector)
        if len(rows) < 2:
            return
        min_cos = CLIP_CANDIDATE_COS if tier == "same" else min(CLIP_CANDIDATE_COS, self.o.similar_threshold)
        everyone = len(rows) == len(t)
        vectors = t.vectors if everyone else t.vectors[rows]  # no copy in the usual case: all are embedded
        yield self._progress("CLIP neighbours", 0, len(rows))  # the index build below takes a while
        chunks = []
        for lo, hi, cos, done in knn_pairs(vectors, k=SIMILAR_K, min_cos=min_cos):
            chunks.append((lo, hi, cos) if everyone else (rows[lo], rows[hi], cos))
            yield self._progress("CLIP neighbours", done, len(rows))
        self._clip = unique_pairs(chunks)

    # -- helpers ------------------------------------------------------------------------------------

    def _verify(self, a: int, b: int, *, pdq_distance: int | None = None, cos: float | None = None) -> float | None:
        """Same photo? The confirmation score, or None. Memoised per pair.

        ``pdq_distance`` and ``cos`` (the CLIP cosine, NaN without vectors) may be passed when computed in bulk.
        """
        key = (a, b) if a < b else (b, a)
        if key in self._verdicts:
            return self._verdicts[key]
        t = self.t
        verdict: float | None = None
        if self._two_exposures(a, b):
            self._verdicts[key] = None
            return None
        if t.quality[a] >= match.MIN_QUALITY and t.quality[b] >= match.MIN_QUALITY:
            verdict = self._verify_pixels(a, b, pdq_distance)
        both_embedded = t.has_vector is not None and bool(t.has_vector[a] and t.has_vector[b])
        if verdict is not None and t.vectors is not None and both_embedded:
            if cos is None:
                cos = float(np.dot(t.vectors[a].astype(np.float32), t.vectors[b].astype(np.float32)))
            if cos < SAME_MIN_COS:
                verdict = None
        self._verdicts[key] = verdict
        return verdict

    def _inherited(
        self,
        a: int,
        b: int,
        twins: dict[int, list[int]],
        verdicts: dict[tuple[int, int], float | None],
        cos: float,
    ) -> tuple[float | None] | None:
        """A twin's confirmation of this pair (``(score,)``, ``(None,)`` if CLIP vetoes it), else None."""
        for x, y in ((a, b), (b, a)):
            for twin in twins.get(x, ()):
                key = (twin, y) if twin < y else (y, twin)
                found = verdicts.get(key)
                if found is not None:  # only a confirmation is passed on: a twin's miss is checked again
                    return (None,) if cos < SAME_MIN_COS else (found,)  # the CLIP veto applies here too
        return None

    def _two_exposures(self, a: int, b: int) -> bool:
        exposure = self.t.exposure
        return exposure is not None and different_exposures(float(exposure[a]), float(exposure[b]))

    def _low_contrast(self, a: int, b: int) -> bool:
        details = self._details((a, b))
        return any(d.normalised for d in details.values())

    def _verify_pixels(self, a: int, b: int, pdq_distance: int | None) -> float | None:
        """The fingerprint tests: PDQ, then a rotation/mirror of the thumbnail, then local features.

        A hash test alone never confirms a pair with a low-contrast photo (its hash came from a contrast
        stretch): the local features must. There is no crop alignment of thumbnails any more: a border or
        a UI bar that two different photos share could pass it.
        """
        t = self.t
        details = self._details((a, b))
        da, db = details.get(a), details.get(b)
        low_contrast = (da is not None and da.normalised) or (db is not None and db.normalised)
        d = pdq_distance if pdq_distance is not None else _pdq_distances(t.pdq, np.array([a]), np.array([b]))[0]
        if d <= match.PDQ_STRICT and not low_contrast:
            return 1.0 - float(d) / 256.0
        if da is not None and db is not None and da.features is not None and db.features is not None:
            started = time.perf_counter()
            score = match.verify_features(da.features, db.features, da.thumb, db.thumb)
            self.feature_checks += 1
            self.feature_seconds += time.perf_counter() - started
            if score is not None:
                return score
        if low_contrast:
            return None
        sa, sb = self._dihedral(a, details), self._dihedral(b, details)
        if sa is not None and sb is not None:
            turned = match.dihedral_score(sa, sb)
            if turned >= match.DIHEDRAL_MIN:
                return turned
        return None

    def _dihedral(self, row: int, details: dict[int, ParsedFingerprint]) -> np.ndarray | None:
        """A photo's high-passed rotations and mirrors (match.dihedral_stack), once per photo."""
        if row not in self._stack_cache:
            found = details.get(row)
            thumb = found.thumb if found is not None else self._thumbs((row,)).get(row)
            if len(self._stack_cache) > 50_000:  # bounded: 32 KB each
                self._stack_cache = {}
            self._stack_cache[row] = None if thumb is None else match.dihedral_stack(thumb)
        return self._stack_cache[row]

    def _details(self, rows: Sequence[int]) -> dict[int, ParsedFingerprint]:
        """Parsed whole fingerprints, once per photo (cached: every pair of a photo reuses its features)."""
        if self.t.details is None:
            return {}
        if len(self._detail_cache) > 20_000:  # bounded: a fingerprint with its keypoints is ~15 KB
            self._detail_cache = {}
        missing = [r for r in rows if r not in self._detail_cache]
        if missing:
            loaded = self.t.details(missing)
            for r in missing:
                self._detail_cache[r] = loaded.get(r)
        return {r: d for r in rows if (d := self._detail_cache.get(r)) is not None}

    def _thumbs(self, rows: Sequence[int]) -> dict[int, np.ndarray]:
        missing = [r for r in rows if r not in self._thumb_cache]
        if missing:
            self._thumb_cache.update(self.t.thumbs(missing))
            if len(self._thumb_cache) > 50_000:  # bounded: thumbnails are 1 KB each
                self._thumb_cache = {r: self._thumb_cache[r] for r in rows if r in self._thumb_cache}
        return {r: self._thumb_cache[r] for r in rows if r in self._thumb_cache}

    def _nodes_marked(self, a: list[int], b: list[int]) -> bool:
        hashes = self.t.content_hashes
        ha = {hashes[r] for r in a} - {None}
        hb = {hashes[r] for r in b} - {None}
        return any(self.o.marked(x, y) for x in ha for y in hb if x is not None and y is not None)

    def _cosines(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """CLIP cosines of row pairs (float32; NaN where either has no vector or there are none)."""
        t = self.t
        if t.vectors is None or t.has_vector is None:
            return np.full(len(a), np.nan, dtype=np.float32)
        left, right = np.asarray(t.vectors[a], dtype=np.float32), np.asarray(t.vectors[b], dtype=np.float32)
        cos = np.einsum("ij,ij->i", left, right)
        return np.where(t.has_vector[a] & t.has_vector[b], cos, np.float32(np.nan)).astype(np.float32)

    def _vector_nodes(self, nodes: _Nodes) -> tuple[np.ndarray, np.ndarray] | None:
        """``(node ids, vector row)`` of the nodes with a vector: each one's first row that has one."""
        t = self.t
        if t.vectors is None or t.has_vector is None:
            return None
        vec_row = nodes.rep.copy()
        has = t.has_vector[vec_row].copy()
        for k, members in nodes.multi.items():
            embedded = [r for r in members if t.has_vector[r]]
            has[k] = bool(embedded)
            vec_row[k] = embedded[0] if embedded else members[0]
        node_ids = np.flatnonzero(has)
        if len(node_ids) < 2:
            return None
        return node_ids, vec_row[node_ids]

    def _nodes_taken(self, nodes: _Nodes, node_ids: np.ndarray) -> np.ndarray:
        """Each node's earliest known capture time (NaN: unknown)."""
        taken = self.t.taken[nodes.rep].astype(np.float64)
        for k, members in nodes.multi.items():
            times = self.t.taken[members]
            times = times[~np.isnan(times)]
            taken[k] = float(times.min()) if len(times) else float("nan")
        return taken[node_ids]

    def _progress(self, phase: str, done: int, total: int) -> DedupProgress:
        if self.o.cancel is not None and self.o.cancel.is_set():
            raise Cancelled("duplicate search cancelled")
        return DedupProgress(phase=phase, done=done, total=total)


class _Nodes:
    """Groups of rows treated as one (identical files, then same-photo clusters), as compact arrays.

    Most nodes are single rows; only the others keep a Python list of their rows. Node numbers follow the
    order the tiers produce them in: nodes not merged keep their order, merged clusters come after.

    Attributes:
        node_of: int64 [rows]: each row's node.
        rep: int64 [nodes]: each node's first row (its representative).
        multi: the rows of each node of several rows, in order.
        labels: the tier of each node of several rows.
    """

    def __init__(self, node_of: np.ndarray, rep: np.ndarray, multi: dict[int, list[int]], labels: dict[int, str]):
        self.node_of = node_of
        self.rep = rep
        self.multi = multi
        self.labels = labels

    @classmethod
    def from_labels(cls, node_of: np.ndarray, *, label: str) -> _Nodes:
        """Nodes from each row's node number (0..count-1); a node's rows in row order."""
        order = np.argsort(node_of, kind="stable")
        count = int(node_of.max()) + 1 if len(node_of) else 0
        starts = np.searchsorted(node_of[order], np.arange(count + 1))
        rep = order[starts[:-1]]
        sizes = np.diff(starts)
        multi = {int(k): order[starts[k] : starts[k + 1]].tolist() for k in np.flatnonzero(sizes > 1).tolist()}
        return cls(node_of, rep, multi, dict.fromkeys(multi, label))

    def __len__(self) -> int:
        return len(self.rep)

    def rows(self, node: int) -> list[int]:
        return self.multi.get(node) or [int(self.rep[node])]

    def merged(self, groups: list[list[int]], *, label: str) -> _Nodes:
        """Each group (node numbers, seed first) becomes one node of ``label``, after the nodes left alone."""
        if not groups:
            return self
        grouped = np.zeros(len(self), dtype=bool)
        for g in groups:
            grouped[g] = True
        kept = np.flatnonzero(~grouped)
        new_id = np.empty(len(self), dtype=np.int64)
        new_id[kept] = np.arange(len(kept))
        for c, g in enumerate(groups):
            new_id[g] = len(kept) + c
        rep = np.concatenate([self.rep[kept], np.array([self.rep[g[0]] for g in groups], dtype=np.int64)])
        multi = {int(new_id[k]): rows for k, rows in self.multi.items() if not grouped[k]}
        labels = {int(new_id[k]): lab for k, lab in self.labels.items() if not grouped[k]}
        for c, g in enumerate(groups):
            multi[len(kept) + c] = [r for x in g for r in self.rows(x)]
            labels[len(kept) + c] = label
        return _Nodes(new_id[self.node_of], rep, multi, labels)


#: Photos a group of confirmed pairs needs before a pair between it and another such group, once one was
#: turned down, goes unverified (see _Families). 2 split a family of ``bench dedup-eval --hard 80`` in two.
FAMILY_MIN = 3


class _Families:
    """The groups the confirmed pairs connect so far (union-find over nodes), and which groups a checked pair
    between them turned down.

    Once two groups of :data:`FAMILY_MIN` photos or more each have had one pair between them turned down,
    they are taken for two photos' families and their other candidate pairs go unverified: those are
    nearly all pairs of different photos (a cropped copy of photo A and a framed print of photo B), and
    the checks that turn them down cost most of the same-photo stage. Only a check is saved: a pair left
    unverified is never confirmed, so it can keep a family apart (a copy left out), never join two.
    """

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._size: dict[int, int] = {}
        self._turned_down: dict[int, set[int]] = {}

    def _root(self, x: int) -> int:
        parent = self._parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent.get(x, x)
        return root

    def turned_down(self, a: int, b: int) -> bool:
        """Whether a and b are in two different groups of FAMILY_MIN or more, a pair between them turned down."""
        ra, rb = self._root(a), self._root(b)
        if ra == rb or self._size.get(ra, 1) < FAMILY_MIN or self._size.get(rb, 1) < FAMILY_MIN:
            return False
        return rb in self._turned_down.get(ra, _NONE)

    def record(self, a: int, b: int, *, confirmed: bool) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra == rb:
            return
        if not confirmed:
            self._turned_down.setdefault(ra, set()).add(rb)
            self._turned_down.setdefault(rb, set()).add(ra)
            return
        if self._size.get(ra, 1) < self._size.get(rb, 1):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] = self._size.get(ra, 1) + self._size.pop(rb, 1)
        # The merged group keeps both groups' turned-down partners (a pair within it is no longer "between").
        for partner in self._turned_down.pop(rb, set()):
            others = self._turned_down[partner]
            others.discard(rb)
            if partner == ra:
                continue
            others.add(ra)
            self._turned_down.setdefault(ra, set()).add(partner)
        self._turned_down.get(ra, set()).discard(rb)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-6)).astype(np.float32)


_NONE: frozenset[int] = frozenset()

_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint16)


def _pdq_distances(pdq: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a), dtype=np.int64)
    for start in range(0, len(a), 65536):
        x = pdq[a[start : start + 65536]] ^ pdq[b[start : start + 65536]]
        out[start : start + 65536] = _POPCOUNT[x].sum(axis=1)
    return out


def _window_matrices() -> np.ndarray:
    return np.stack([match.interp_matrix(8, f, o) for f, o in WINDOW_PARAMS])


@lru_cache(maxsize=1)
def _thumb_window_matrices() -> np.ndarray:
    """The crop windows on a 32 px thumbnail side, each followed by the 4 px box average down to 8: [W, 8, 32]."""
    side, out = THUMB_SIDE, 8
    box = np.kron(np.eye(out, dtype=np.float32), np.full((1, side // out), out / side, dtype=np.float32))
    return np.stack([box @ match.interp_matrix(side, f, o) for f, o in WINDOW_PARAMS])


@lru_cache(maxsize=1)
def _turn_matrices() -> np.ndarray:
    """Linear maps from a flattened 32x32 thumbnail to the 8x8 layout of it turned by each of
    :data:`TURN_QUERIES_DEG` about its centre (bilinear, black outside, as a "straighten" edit leaves the
    corners): [T, 64, 1024]."""
    side = THUMB_SIDE
    maps = []
    for degrees in TURN_QUERIES_DEG:
        cos, sin = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        v, u = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5 - side / 2
        # Where each output pixel comes from (the inverse rotation), in input pixel coordinates.
        x = cos * u - sin * v + side / 2 - 0.5
        y = sin * u + cos * v + side / 2 - 0.5
        m = np.zeros((side * side, side * side), dtype=np.float64)
        x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        out_index = np.arange(side * side).reshape(side, side)
        for dy in (0, 1):
            for dx in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                w = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
                ok = (xi >= 0) & (xi < side) & (yi >= 0) & (yi < side) & (w > 0)
                np.add.at(m, (out_index[ok], yi[ok] * side + xi[ok]), w[ok])
        box = np.kron(np.eye(8), np.full((1, side // 8), 8 / side))
        pool = np.kron(box, box)  # [64, 1024]: the 4x4 box average
        maps.append((pool @ m).astype(np.float32))
    return np.stack(maps)
