"""Dependency-tree decoding: maximum spanning arborescence (Chu-Liu/Edmonds) with exactly one child of the root.

Scores are an (n+1) x (n+1) matrix `scores[head, dependent]` over node 0 (the artificial root) and words 1..n.
UD requires exactly one word attached to the root. We get the best such tree exactly by subtracting a constant `M`
from every root edge, with `M` larger than the spread of any two trees' scores: every spanning arborescence then pays
`M` once per root child, so the optimum has a single root child and, among those trees (which all pay `M` once), the
highest original score. The maximum arborescence itself is Chu-Liu/Edmonds: pick each word's best head, and while
that contains a cycle, contract the cycle into one node (edges into it scored relative to the cycle edge they
replace) and recurse; O(n^3) in this simple form, fine for sentence-length n.
"""

from __future__ import annotations

import numpy as np


def find_cycle(heads: np.ndarray) -> list[int] | None:
    """Nodes of one cycle in a head array (`heads[0]` is ignored: node 0 is the root), or None if acyclic."""
    n = len(heads)
    state = np.zeros(n, dtype=np.int8)  # 0 unvisited, 1 on the current path, 2 done
    state[0] = 2
    for start in range(1, n):
        path = []
        node = start
        while state[node] == 0:
            state[node] = 1
            path.append(node)
            node = int(heads[node])
        if state[node] == 1:  # walked back onto the current path
            return path[path.index(node) :]
        state[path] = 2
    return None


def is_tree(heads: np.ndarray | list[int]) -> bool:
    """True if `heads` (for words 1..n, values in 0..n) forms a tree rooted at 0 with exactly one root child."""
    heads = np.asarray(heads)
    n = len(heads)
    if n == 0 or heads.min() < 0 or heads.max() > n or np.sum(heads == 0) != 1:
        return False
    if np.any(heads == np.arange(1, n + 1)):
        return False
    return find_cycle(np.concatenate([[0], heads])) is None


def _max_arborescence(scores: np.ndarray) -> np.ndarray:
    """Chu-Liu/Edmonds on a dense matrix with node 0 as root; returns heads (heads[0] = -1)."""
    n = scores.shape[0]
    heads = scores.argmax(axis=0)
    heads[0] = -1
    cycle = find_cycle(heads)
    if cycle is None:
        return heads
    in_cycle = np.zeros(n, dtype=bool)
    in_cycle[cycle] = True
    outside = np.flatnonzero(~in_cycle)  # contains node 0
    cyc = np.array(cycle)
    # Contracted graph: the outside nodes (same order, so node 0 stays 0) plus the cycle as its last node.
    k = len(outside)
    sub = np.full((k + 1, k + 1), -np.inf)
    sub[:k, :k] = scores[np.ix_(outside, outside)]
    # Entering the cycle at v replaces v's cycle edge: score relative to it.
    enter = scores[np.ix_(outside, cyc)] - scores[heads[cyc], cyc][None, :]
    enter_at = enter.argmax(axis=1)
    sub[:k, k] = enter[np.arange(k), enter_at]
    leave = scores[np.ix_(cyc, outside)]
    leave_from = leave.argmax(axis=0)
    sub[k, :k] = leave[leave_from, np.arange(k)]
    sub[k, 0] = -np.inf
    sub_heads = _max_arborescence(sub)

    result = heads.copy()
    for i, node in enumerate(outside[1:], start=1):
        h = sub_heads[i]
        result[node] = cyc[leave_from[i]] if h == k else outside[h]
    entering_from = sub_heads[k]
    result[cyc[enter_at[entering_from]]] = outside[entering_from]
    return result


def decode_tree(scores: np.ndarray) -> np.ndarray:
    """Best dependency tree with exactly one root child.

    `scores[h, d]`: score of head h for dependent d, shape (n+1, n+1), node 0 = root; finite values (e.g.
    log-probabilities). Returns heads for words 1..n (length n, values in 0..n).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(f"expected an (n+1) x (n+1) score matrix with n >= 1, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    n = scores.shape[0] - 1
    work = scores.copy()
    spread = float(work.max() - work.min())
    work[0, 1:] -= (n + 1) * (spread + 1.0)  # root penalty: see module docstring
    np.fill_diagonal(work, -np.inf)
    work[:, 0] = -np.inf
    return _max_arborescence(work)[1:]
