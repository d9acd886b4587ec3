"""Clusters from a sparse graph of confirmed pairs: complete link (similar shots), stars (same photo).

Connected components chain: A~B and B~C would put a very different A and C together. Here a member joins a
cluster only if it is linked to *every* member already in it (complete link). Links missing from the sparse
candidate graph are tested on demand (``link``), so a pair the neighbour search did not return is not
wrongly taken for "unlinked". Seeds are taken best-connected first, so the large true groups form first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def complete_link_clusters(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    score: np.ndarray,
    *,
    link: Callable[[int, int], bool],
    max_size: int = 500,
) -> list[list[int]]:
    """Clusters (lists of node indices, seed first) of at least two nodes; each node in at most one.

    Args:
        n: number of nodes.
        i, j, score: the confirmed edges, any order (vetoed pairs, such as "not duplicates" marks, removed).
        link: whether two nodes belong together, for pairs that are not edges (False for vetoed pairs).
        max_size: a cap so that a pathological hub cannot make the on-demand checks quadratic.
    """
    if len(i) == 0:
        return []
    a = np.concatenate([i, j])
    b = np.concatenate([j, i])
    s = np.concatenate([score, score])
    order = np.lexsort((-s, a))
    a, b, s = a[order], b[order], s[order]
    starts = np.searchsorted(a, np.arange(n + 1))
    degree = np.diff(starts)
    edge_set = {(int(x), int(y)) for x, y in zip(i.tolist(), j.tolist(), strict=True)}

    def linked(x: int, y: int) -> bool:
        key = (x, y) if x < y else (y, x)
        return key in edge_set or link(x, y)

    assigned = np.zeros(n, dtype=bool)
    clusters: list[list[int]] = []
    for seed in np.lexsort((np.arange(n), -degree)).tolist():
        if degree[seed] == 0:
            break
        if assigned[seed]:
            continue
        members = [seed]
        # Candidates: the seed's neighbours, then each new member's (a k-nearest list saturated by many
        # copies would otherwise hide a member the others do link to). Complete link still decides.
        queue = b[starts[seed] : starts[seed + 1]].tolist()
        seen = {seed, *queue}
        while queue and len(members) < max_size:
            other = queue.pop(0)
            if assigned[other]:
                continue
            if all(linked(other, m) for m in members):
                members.append(other)
                for more in b[starts[other] : starts[other + 1]].tolist():
                    if more not in seen:
                        seen.add(more)
                        queue.append(more)
        if len(members) >= 2:
            assigned[members] = True
            clusters.append(members)
    return clusters


def star_clusters(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    score: np.ndarray,
    *,
    link: Callable[[int, int], bool],
    rank: np.ndarray,
    max_size: int = 500,
    apart: Callable[[int, int], bool] | None = None,
    unverified: Sequence[tuple[int, int]] = (),
) -> list[list[int]]:
    """Clusters per photo: a centre (the likely original) and every node confirmed with the centre itself.

    A photo's crops, rotations, mirrors and edits each match the original but often not each other (two
    crops at opposite corners, a crop and a mirror): complete link splits such a family, connected components
    would chain two photos through a shared variant. Here a member must be linked to the centre, and only to
    it; the centre is the best-connected node left (ties: higher ``rank``, the larger file), as the original
    is the one its variants all come from. Candidates are the centre's edges and, tested on demand with
    ``link``, its neighbours' neighbours (a pair the candidate search did not return).

    A node whose own neighbours are mostly outside the centre's (another photo's original, reached through
    one wrongly matched variant) does not join: it becomes a centre itself.

    ``apart(x, y)`` names nodes that never share a cluster, whatever links them (two exposures of a burst,
    both matched by one copy that lost its EXIF): a node apart from a member already placed stays out.

    ``unverified``: candidate pairs left unchecked (neither an edge nor a miss). A left-over node about to
    join a cluster has its unverified pairs into other clusters checked first, with ``link``: it must not
    reach two (see _attach_leftovers).

    Returns lists of node indices, centre first; each node in at most one cluster.
    """
    if len(i) == 0:
        return []

    def fits(node: int, members: list[int]) -> bool:
        return apart is None or not any(apart(node, m) for m in members)

    a = np.concatenate([i, j])
    b = np.concatenate([j, i])
    s = np.concatenate([score, score])
    order = np.lexsort((-s, a))
    a, b = a[order], b[order]
    starts = np.searchsorted(a, np.arange(n + 1))
    degree = np.diff(starts)
    edge_set = {(int(x), int(y)) for x, y in zip(i.tolist(), j.tolist(), strict=True)}
    assigned = np.zeros(n, dtype=bool)
    clusters: list[list[int]] = []
    for centre in np.lexsort((np.arange(n), -rank, -degree)).tolist():
        if degree[centre] == 0:
            break
        if assigned[centre]:
            continue
        around = set(b[starts[centre] : starts[centre + 1]].tolist()) | {centre}
        direct = [x for x in b[starts[centre] : starts[centre + 1]].tolist() if not assigned[x]]
        direct = [x for x in direct if not _another_photo(b[starts[x] : starts[x + 1]], around, centre)]
        members = [centre]
        for x in direct:
            if len(members) < max_size and fits(x, members):
                members.append(x)
        direct = members[1:]
        seen = set(members)
        for x in direct:
            for y in b[starts[x] : starts[x + 1]].tolist():
                if len(members) >= max_size:
                    break
                if y in seen or assigned[y]:
                    continue
                seen.add(y)
                key = (centre, y) if centre < y else (y, centre)
                if not _another_photo(b[starts[y] : starts[y + 1]], around, centre) and fits(y, members) and (
                    key in edge_set or link(centre, y)
                ):
                    members.append(y)
        if len(members) >= 2:
            assigned[members] = True
            clusters.append(members)
    _attach_leftovers(clusters, assigned, b, starts, fits, unverified, link)
    return clusters


def _attach_leftovers(
    clusters: list[list[int]],
    assigned: np.ndarray,
    b: np.ndarray,
    starts: np.ndarray,
    fits: Callable[[int, list[int]], bool],
    unverified: Sequence[tuple[int, int]] = (),
    link: Callable[[int, int], bool] | None = None,
) -> None:
    """A node left out of every star but confirmed with members of exactly one cluster joins that cluster.

    The centre is the best-connected copy, not always the original: a framed print or a pad of the photo
    can be it, and a 25 % crop, which matches the original, may not match the print. Such a node is left
    alone by the stars; here it joins the cluster its confirmed pairs point to. Only single nodes join, and
    only through members the stars placed (not through another node joined here), and never a node whose
    confirmed pairs reach into two clusters: no cluster grows into another, no chain forms. A candidate pair
    left unverified into another cluster is checked (``link``) before a node joins: if it is confirmed, the
    node reaches two clusters (no ``link``: it counts as reaching, the cautious answer).
    """
    cluster_of = np.full(len(assigned), -1, dtype=np.int64)
    for k, members in enumerate(clusters):
        cluster_of[members] = k
    maybe: dict[int, set[int]] = {}
    for x, y in unverified:
        maybe.setdefault(x, set()).add(y)
        maybe.setdefault(y, set()).add(x)
    joining: list[tuple[int, int]] = []
    for node in np.flatnonzero(~assigned & (np.diff(starts) > 0)).tolist():
        reached = {int(c) for c in cluster_of[b[starts[node] : starts[node + 1]]].tolist()}
        reached.discard(-1)
        if len(reached) != 1:
            continue
        k = next(iter(reached))
        for y in sorted(maybe.get(node, ())):
            if cluster_of[y] not in (-1, k) and (link is None or link(node, y)):
                reached.add(int(cluster_of[y]))
                break
        if len(reached) == 1:
            joining.append((node, k))
    for node, k in joining:
        if fits(node, clusters[k]):
            clusters[k].append(node)
            assigned[node] = True


def _another_photo(neighbours: np.ndarray, around: set[int], centre: int) -> bool:
    """Whether a node has a family of its own that the centre does not share (another photo's original
    that one of its variants was matched with): it is left to be a centre itself, so that one edge never
    joins two photos' clusters."""
    own = set(neighbours.tolist())
    return len(own - around) > len((own & around) - {centre}) + 1
