"""Complete-link clusters from a sparse graph of confirmed pairs.

Connected components chain: A~B and B~C would put a very different A and C together. Here a member joins a
cluster only if it is linked to *every* member already in it (complete link). Links missing from the sparse
candidate graph are tested on demand (``link``), so a pair the neighbour search did not return is not
wrongly taken for "unlinked". Seeds are taken best-connected first, so the large true groups form first.
"""

from __future__ import annotations

from collections.abc import Callable

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
