"""Clusters per photo: a centre (the original) and what matches it, never a chain through a shared variant."""

from __future__ import annotations

import numpy as np
from PIL import Image

from photoembed.bench import dedup_kinds as kinds
from photoembed.dedup.cluster import star_clusters
from photoembed.imaging.fingerprint import LOW_QUALITY, fingerprint, parse
from tests.dedup.conftest import scene


def _edges(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i = np.array([min(p) for p in pairs], dtype=np.int64)
    j = np.array([max(p) for p in pairs], dtype=np.int64)
    return i, j, np.ones(len(pairs), dtype=np.float32)


def test_a_family_that_only_matches_its_original_is_one_cluster() -> None:
    # 0: the original; 1, 2: crops at opposite corners; 3: a mirror. Only the original matches each of them.
    i, j, s = _edges([(0, 1), (0, 2), (0, 3)])
    clusters = star_clusters(4, i, j, s, link=lambda a, b: False, rank=np.zeros(4))
    assert clusters == [[0, 1, 2, 3]]


def test_two_photos_sharing_a_variant_are_not_chained() -> None:
    # Photo A (0) with copies 1, 2; photo B (3) with copies 4, 5; 2 also matched B by mistake of the graph.
    i, j, s = _edges([(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5), (2, 3)])
    clusters = star_clusters(6, i, j, s, link=lambda a, b: False, rank=np.zeros(6))
    members = [set(c) for c in clusters]
    assert all(not ({0, 3} <= m) for m in members)  # no cluster holds both originals
    assert {3, 4, 5} in members


def test_a_neighbours_neighbour_is_checked_with_the_centre_first() -> None:
    # 0 - 1 - 2: 2 is not an edge of 0; it joins as the centre's match when link(0, 2) says so.
    i, j, s = _edges([(0, 1), (0, 3), (1, 2)])
    asked: list[tuple[int, int]] = []

    def link(a: int, b: int) -> bool:
        asked.append((a, b))
        return b == 2

    assert star_clusters(4, i, j, s, link=link, rank=np.zeros(4)) == [[0, 1, 3, 2]]
    assert asked == [(0, 2)]


def test_a_copy_left_out_by_the_centre_joins_the_one_cluster_it_matches() -> None:
    # 0 is the centre (best connected: a framed print, say); 4, a 25 % crop, matches the original 1 only.
    i, j, s = _edges([(0, 1), (0, 2), (0, 3), (1, 2), (1, 4)])
    assert star_clusters(5, i, j, s, link=lambda a, b: False, rank=np.zeros(5)) == [[0, 1, 2, 3, 4]]


def test_a_left_out_copy_matching_two_clusters_joins_neither() -> None:
    # Two photos' families (0: 1, 2, 3; 4: 5, 6, 7); 8 matches 1 and 5, none of the centres: no chain.
    pairs = [(0, 1), (0, 2), (0, 3), (4, 5), (4, 6), (4, 7), (1, 8), (5, 8)]
    i, j, s = _edges(pairs)
    clusters = star_clusters(9, i, j, s, link=lambda a, b: False, rank=np.zeros(9))
    assert sorted(sorted(c) for c in clusters) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_left_out_copy_joins_through_the_stars_members_only() -> None:
    # 6 matches only 5, a copy left out that joins through 1: 6 stays out of 0's cluster (no chain of joins).
    i, j, s = _edges([(0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (5, 6)])
    clusters = star_clusters(7, i, j, s, link=lambda a, b: False, rank=np.zeros(7))
    assert all(not ({0, 6} <= set(c)) for c in clusters), clusters


def test_ties_go_to_the_larger_file() -> None:
    i, j, s = _edges([(0, 1)])
    assert star_clusters(2, i, j, s, link=lambda a, b: False, rank=np.array([1.0, 5.0])) == [[1, 0]]


def test_a_misty_photo_is_hashed_after_a_contrast_stretch() -> None:
    photo = scene(5)
    plain = parse(fingerprint(photo).phash)
    hazy = parse(fingerprint(kinds.misty(photo)).phash)
    flat = parse(fingerprint(Image.new("RGB", (400, 300), (120, 130, 140))).phash)
    assert plain is not None
    assert not plain.normalised
    assert hazy is not None
    assert hazy.normalised
    assert hazy.quality >= LOW_QUALITY
    assert hazy.features is not None
    assert len(hazy.features.points) >= 50
    assert flat is not None
    assert not flat.normalised
    assert flat.quality < LOW_QUALITY


def test_a_left_out_copy_has_its_unverified_pairs_checked_before_it_joins() -> None:
    # Two photos' families (0: 1, 2, 3; 4: 5, 6, 7); 8 matches 1, and its pair with 5 was left unverified.
    pairs = [(0, 1), (0, 2), (0, 3), (4, 5), (4, 6), (4, 7), (1, 8)]
    i, j, s = _edges(pairs)
    asked: list[tuple[int, int]] = []

    def link(a: int, b: int, answer: bool) -> bool:
        asked.append((a, b))
        return answer and {a, b} == {5, 8}  # 8 is no copy of the centre 0 (it is asked: a neighbour's neighbour)

    # Confirmed when asked: 8 reaches two clusters, it joins neither (as if the pair had been an edge).
    clusters = star_clusters(9, i, j, s, link=lambda a, b: link(a, b, True), rank=np.zeros(9), unverified=[(5, 8)])
    assert sorted(sorted(c) for c in clusters) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert asked == [(0, 8), (8, 5)]
    # Turned down: 8 joins the one cluster it matches.
    asked.clear()
    clusters = star_clusters(9, i, j, s, link=lambda a, b: link(a, b, False), rank=np.zeros(9), unverified=[(5, 8)])
    assert sorted(sorted(c) for c in clusters) == [[0, 1, 2, 3, 8], [4, 5, 6, 7]]
    assert asked == [(0, 8), (8, 5)]
