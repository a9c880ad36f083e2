"""Leader clustering: cover the prototypes with balls around representatives.

A *node* is a ball: a representative prototype ``rep`` and an upper bound ``radius`` on the
float64 distance from it to every member. With radius below the threshold's sure distance, every
member is an exact duplicate of its representative (a *star*: connected); with radius below half
of it, every two members are duplicates (a *clique*). On a collapsed head a few thousand balls
cover 65536 prototypes, so later passes work on representatives instead of all pairs.

Clustering is a heuristic (which representative a node joins is found in a cheap projected
space), but every radius is an exact float64 bound, so results never depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decide import exact_distances, row_distances

__all__ = ["Nodes", "singletons", "merge_nodes"]

#: Stop once, after this many blocks, most nodes so far found no ball: the head is not collapsed
#: there and the cost would only grow.
_PATIENCE = 2
_MIN_YIELD = 0.25
#: Up to this many leaders, all of them are join targets.
_ALL_TARGETS = 4096
#: Above this many projected-close pairs per node, a block is walked leader by leader.
_DENSE_PAIRS = 64


@dataclass(frozen=True, eq=False)
class Nodes:
    """A cover of K prototypes by N balls.

    Attributes:
        rep: (N,) int64, the representative prototype of each node, ascending.
        radius: (N,) float64, an upper bound on the distance from rep to each member.
        node_of: (K,) int64, the node of each prototype.
    """

    rep: np.ndarray
    radius: np.ndarray
    node_of: np.ndarray

    @property
    def count(self) -> int:
        return int(self.rep.size)

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, starts): prototypes sorted by node; node n owns order[starts[n]:starts[n+1]]."""
        order = np.argsort(self.node_of, kind="stable")
        starts = np.searchsorted(self.node_of[order], np.arange(self.count + 1))
        return order, starts


def singletons(num: int) -> Nodes:
    """Every prototype its own node (radius 0)."""
    index = np.arange(num, dtype=np.int64)
    return Nodes(rep=index, radius=np.zeros(num), node_of=index.copy())


def merge_nodes(vectors: np.ndarray, coords: np.ndarray, nodes: Nodes, limit: float, *,
                block_size: int = 2048, max_leaders: int = 8192) -> Nodes:
    """Merge nodes into balls of radius < ``limit`` around leaders (greedy, in rep order).

    Args:
        vectors: (K, D) float32 unit rows.
        coords: (K, m) float32 projected rows (distances there never exceed true distances).
        nodes: the current cover; each node joins a leader p when
            ``d(rep, p) + radius < limit`` (exact float64), so the merged ball is a valid bound.
        limit: the new radius bound.
        block_size: nodes handled per vectorised step.
        max_leaders: leaders founded at most (bounds the cost on heads that are not collapsed).

    Returns:
        A new cover, or ``nodes`` itself when nothing merged.
    """
    count = nodes.count
    if count < 2 or limit <= 0.0:
        return nodes
    parent = np.full(count, -1, dtype=np.int64)      # leader node of each node
    offset = np.zeros(count, dtype=np.float64)        # d(rep, leader rep) + radius
    leaders: list[int] = []          # join targets: leaders with followers, and the newest ones
    leader_coords = np.empty((0, coords.shape[1]), dtype=np.float32)
    newest: list[int] = []
    unfollowed: list[int] = []       # older leaders nobody joined yet
    founded_total = 0
    # squared projected distance below limit^2 is necessary for a true distance below limit.
    limit_sq = limit * limit
    founding, blocks, seen, gained_total = True, 0, 0, 0
    for start in range(0, count, block_size):
        block = np.arange(start, min(start + block_size, count))
        block_coords = coords[nodes.rep[block]]
        targets = leaders + newest
        if len(targets) + len(unfollowed) <= _ALL_TARGETS:
            # Few leaders so far: every one of them stays a target (cheap, and merges more).
            targets = targets + unfollowed
        if targets:
            target_coords = np.concatenate([leader_coords, coords[nodes.rep[targets[len(leaders):]]]])
            _join_existing(vectors, nodes, block, block_coords, target_coords, np.asarray(targets),
                           limit, limit_sq, parent, offset)
        joined_before = int(np.count_nonzero(parent[block] >= 0))
        founded = []
        if founding:
            founded = _found_in_block(vectors, nodes, block, block_coords, limit, limit_sq,
                                      parent, offset)
            founded_total += len(founded)
            # A leader nobody joined in two blocks is most likely alone: stop comparing with it.
            owners, counts = np.unique(parent[block], return_counts=True)
            fresh = np.asarray(founded, dtype=np.int64)
            older = np.asarray(newest, dtype=np.int64)
            joined = np.isin(fresh, owners[counts > 1])
            followed = older[np.isin(older, owners)].tolist() + fresh[joined].tolist()
            followed_set = set(followed)
            unfollowed.extend(p for p in newest if p not in followed_set)
            newest = fresh[~joined].tolist()
            leaders.extend(followed)
            leader_coords = np.concatenate([leader_coords, coords[nodes.rep[followed]]])
            if founded_total >= max_leaders:
                founding = False
        followers = int(np.count_nonzero(parent[block] >= 0)) - joined_before - len(founded)
        gained = joined_before + followers
        blocks, seen, gained_total = blocks + 1, seen + block.size, gained_total + gained
        if blocks >= _PATIENCE and gained_total < _MIN_YIELD * seen:
            break
    alone = parent < 0
    parent[alone] = np.flatnonzero(alone)
    offset[alone] = nodes.radius[alone]
    return _under_leaders(nodes, parent, offset)


def _join_existing(vectors: np.ndarray, nodes: Nodes, block: np.ndarray, block_coords: np.ndarray,
                   leader_coords: np.ndarray, leaders: np.ndarray, limit: float, limit_sq: float,
                   parent: np.ndarray, offset: np.ndarray) -> None:
    """Join each node of the block to its nearest leader (projected), if exactly close enough."""
    sims = block_coords @ leader_coords.T
    best = np.argmax(sims, axis=1)
    best_sim = sims[np.arange(block.size), best]
    proj_sq = (np.einsum("ij,ij->i", block_coords, block_coords)
               + np.einsum("ij,ij->i", leader_coords[best], leader_coords[best]) - 2.0 * best_sim)
    near = proj_sq < limit_sq * 1.0001 + 1e-5
    cand = block[near]
    if cand.size == 0:
        return
    _attach(vectors, nodes, cand, leaders[best[near]], limit, parent, offset)


def _found_dense(vectors: np.ndarray, nodes: Nodes, ids: np.ndarray, close: np.ndarray, limit: float,
                 parent: np.ndarray, offset: np.ndarray) -> list[int]:
    """Leader walk over nodes ``ids`` with many projected-close pairs: check per leader."""
    taken = np.zeros(ids.size, dtype=bool)
    founded = []
    for i in range(ids.size):
        if taken[i]:
            continue
        taken[i] = True
        leader = int(ids[i])
        founded.append(leader)
        parent[leader] = leader
        offset[leader] = nodes.radius[leader]
        cand = np.flatnonzero(close[i, i + 1:] & ~taken[i + 1:]) + i + 1
        if cand.size == 0:
            continue
        dist = row_distances(vectors, nodes.rep[ids[cand]], int(nodes.rep[leader])) + nodes.radius[ids[cand]]
        ok = dist < limit
        taken[cand[ok]] = True
        parent[ids[cand[ok]]] = leader
        offset[ids[cand[ok]]] = dist[ok]
    return founded


def _found_in_block(vectors: np.ndarray, nodes: Nodes, block: np.ndarray, block_coords: np.ndarray,
                    limit: float, limit_sq: float, parent: np.ndarray, offset: np.ndarray) -> list[int]:
    """Leader clustering among the block's unassigned nodes, in order; returns new leaders."""
    free = np.flatnonzero(parent[block] < 0)
    if free.size == 0:
        return []
    local = block_coords[free]
    norms = np.einsum("ij,ij->i", local, local)
    sq = norms[:, None] + norms[None, :] - 2.0 * (local @ local.T)
    close = sq < limit_sq * 1.0001 + 1e-5
    np.fill_diagonal(close, False)
    rows, cols = np.nonzero(np.triu(close, 1))
    if rows.size > 4 * free.size:
        # The projection is too coarse here (a large limit): filter by float32 cosines of the
        # full rows first. A heuristic filter only: a missed pair costs a merge, not exactness.
        full = vectors[nodes.rep[block[free]]]
        cos_floor = 1.0 - 1e-5 - limit * limit / 2.0
        close &= (full @ full.T) > cos_floor
        rows, cols = np.nonzero(np.triu(close, 1))
    if rows.size > _DENSE_PAIRS * free.size:
        return _found_dense(vectors, nodes, block[free], close, limit, parent, offset)
    ids = block[free]
    # Exact test of every projected-close pair at once; the walk below only reads the answers.
    dist = exact_distances(vectors, nodes.rep[ids[rows]], nodes.rep[ids[cols]]) + nodes.radius[ids[cols]]
    ok = dist < limit
    rows, cols, dist = rows[ok], cols[ok], dist[ok]
    starts = np.searchsorted(rows, np.arange(free.size + 1))
    # Nodes in no within-limit pair lead themselves; only the others need the ordered walk.
    involved = np.zeros(free.size, dtype=bool)
    involved[rows] = True
    involved[cols] = True
    taken = np.zeros(free.size, dtype=bool)
    for i in np.flatnonzero(involved).tolist():
        if taken[i]:
            continue
        taken[i] = True
        lo, hi = starts[i], starts[i + 1]
        if lo == hi:
            continue
        follow = cols[lo:hi]
        fresh = ~taken[follow]
        follow = follow[fresh]
        taken[follow] = True
        parent[ids[follow]] = ids[i]
        offset[ids[follow]] = dist[lo:hi][fresh]
    leaders = ids[parent[ids] < 0]
    parent[leaders] = leaders
    offset[leaders] = nodes.radius[leaders]
    founded = leaders.tolist()
    return founded


def grid_merge(vectors: np.ndarray, coords: np.ndarray, nodes: Nodes, limit: float, *,
               grid_dims: int = 4, seed: int = 0, rounds: int = 4) -> Nodes:
    """Merge nodes that share a cell of a grid (side ``limit``) on the first projected coordinates.

    Near-copies land in one cell; the first node of a cell leads it and every other node of the
    cell joins when ``d(rep, leader rep) + radius < limit`` (exact float64). Nodes that fail
    (another group in the same cell) try again in the next round under the cell's first failed
    node. O(rounds N D), vectorised: it takes the bulk of a collapsed head before the leader
    pass handles what is left.
    """
    count = nodes.count
    if count < 2 or limit <= 0.0:
        return nodes
    dims = min(grid_dims, coords.shape[1])
    shift = np.random.default_rng(seed).uniform(0.0, limit, size=dims)
    keys = np.floor((coords[nodes.rep, :dims] + shift) / limit).astype(np.int64)
    # One int64 per cell (a rare hash collision only puts two cells together: fewer merges).
    code = keys @ (np.int64(1_000_003) ** np.arange(dims, dtype=np.int64))
    _, cell = np.unique(code, return_inverse=True)
    cell = cell.reshape(-1)
    parent = np.arange(count)
    offset = nodes.radius.copy()
    pending = np.arange(count)
    for _ in range(rounds):
        leader_of_cell = np.full(int(cell.max()) + 1, count, dtype=np.int64)
        np.minimum.at(leader_of_cell, cell[pending], pending)
        leader = leader_of_cell[cell[pending]]
        movers = pending[leader != pending]
        if movers.size == 0:
            break
        ok = _attach(vectors, nodes, movers, leader_of_cell[cell[movers]], limit, parent, offset)
        pending = movers[~ok]
        if pending.size == 0 or not np.any(ok):
            break
    return _under_leaders(nodes, parent, offset)


def _attach(vectors: np.ndarray, nodes: Nodes, members: np.ndarray, leads: np.ndarray,
            limit: float, parent: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Put each member node under its proposed leader when the exact bound (distance between
    reps plus the member's radius) stays below ``limit``; returns which ones moved."""
    dist = exact_distances(vectors, nodes.rep[members], nodes.rep[leads]) + nodes.radius[members]
    ok = dist < limit
    parent[members[ok]] = leads[ok]
    offset[members[ok]] = dist[ok]
    return ok


def _under_leaders(nodes: Nodes, parent: np.ndarray, offset: np.ndarray) -> Nodes:
    """Merge each node into its leader ``parent`` (a leader is its own parent); ``offset`` is a
    node's distance bound to its leader's rep, so a merged radius is the largest offset."""
    if np.all(parent == np.arange(parent.size)):
        return nodes
    # Renumber leaders in rep order; reps of leaders are reps of nodes, so stay ascending.
    leader_ids, new_index = np.unique(parent, return_inverse=True)
    radius = np.zeros(leader_ids.size)
    np.maximum.at(radius, new_index, offset)
    return Nodes(rep=nodes.rep[leader_ids], radius=radius, node_of=new_index[nodes.node_of])
