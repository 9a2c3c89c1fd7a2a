"""KCenterGreedy (Sener and Savarese 2018): farthest-first selection of a diverse subset.

Semantics: start from `first`; then repeatedly select the point whose Euclidean distance to
its nearest selected center is largest. Ties go to the lowest index. A point at distance 0 from
a center (a duplicate) is never selected: when every remaining point is one, selection stops
early and `KCenterResult.exhausted` says so.

The selection is the exact float64 one while the work is float32 and mostly skipped:

* Full passes compute float32 squared distances (`|x|^2 + |c|^2 - 2 x.c`, one matrix-vector
  product per step, in row chunks) with a rigorous error bound `eps` (worst case of any
  summation order); the few rows a pruned step updates get exact float64 distances. Each
  point keeps bounds on its true nearest-center distance, and the argmax is decided exactly:
  only points whose upper bound reaches the best lower bound are candidates, their distance
  to their tracked nearest center is computed in float64, and only a candidate whose
  second-nearest is within the error bound is checked against every center.
* Pruning by the triangle inequality: once some centers are chosen, points are grouped by
  their nearest center (regrouped as the number of centers grows). A new center `c` cannot
  come closer to any point of a group `g` with center `m_g` and radius `r_g` when
  `d(c, m_g) - r_g >= sqrt(max nearest-center distance in g)`, so such groups are skipped
  whole. On clustered data most groups are skipped; on uniform data the test fails and backs
  off, leaving plain full passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_FIRST_REGROUP = 64
_REGROUP_GROWTH = 1.5
_MAX_GROUPS = 1024
_MAX_ACTIVE_SHARE = 0.5  # above this share of rows to update, a plain full pass is cheaper
_MAX_BACKOFF = 64
_EXACT_SHARE = 0.125  # gathered updates up to this share of rows are done in float64
_EXACT_ROWS = 2048  # rows per float64 block


@dataclass(frozen=True)
class KCenterResult:
    """Selected row indices in selection order and the distance at which each was selected."""

    indices: np.ndarray
    """int64 row indices, `indices[0]` the given first center."""
    distances: np.ndarray
    """float64: distance of each selected point to its nearest previously selected center when
    it was chosen; `distances[0]` is 0.0 (the first center has no previous center)."""
    final_radius: float
    """Largest distance of any point to its nearest selected center after the last selection."""
    requested: int
    """The `k` asked for."""

    @property
    def exhausted(self) -> bool:
        """True when fewer than `requested` points were selected: the rest are duplicates."""
        return len(self.indices) < self.requested


def first_center(n: int, seed: int) -> int:
    """The seeded first center used by the compress phase (record it with the dataset)."""
    if n < 1:
        raise ValueError("need at least one point")
    return int(np.random.default_rng(seed).integers(n))


def coverage_radius_curve(result: KCenterResult) -> np.ndarray:
    """Coverage radius after 1, 2, ..., m selections (for the card's figure).

    The point selected at step j+1 is by definition the farthest from the first j+1 centers, so
    the curve is `distances[1:]` followed by `final_radius`.
    """
    return np.append(result.distances[1:], result.final_radius).astype(np.float64)


class _Groups:
    """Points grouped by their tracked nearest center, with the bounds used for pruning."""

    def __init__(self, state: _State) -> None:
        count = state.selected
        self.order = np.argsort(state.nn1, kind="stable")
        self.sizes = np.bincount(state.nn1, minlength=count).astype(np.int64)
        self.offsets = np.cumsum(self.sizes) - self.sizes
        self.centers = state.centers[:count].copy()
        self.center_sq = state.center_sq[:count].astype(np.float32)
        self.max_up = np.empty(count)
        self.max_lo = np.empty(count)
        self.refresh(state, np.arange(count), self.order, self.offsets)
        # Every member's tracked center is its group's center, so `up` bounds its distance.
        self.radius = np.sqrt(self.max_up)
        self.valid = True

    def rows(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Original row indices of the given groups, and where each group starts among them."""
        lengths = self.sizes[groups]
        starts = np.cumsum(lengths) - lengths
        positions = np.arange(int(lengths.sum())) + np.repeat(
            self.offsets[groups] - starts, lengths
        )
        return self.order[positions], starts

    def refresh(
        self, state: _State, groups: np.ndarray, rows: np.ndarray, starts: np.ndarray
    ) -> None:
        """Recompute the bounds' maxima of `groups` (whose rows are `rows`, from `starts`)."""
        if len(groups) == 0:
            return
        upper, lower = state.bounds(rows)
        self.max_up[groups] = np.maximum.reduceat(upper, starts)
        self.max_lo[groups] = np.maximum.reduceat(lower, starts)


class _State:
    """Nearest-center distances of every point, with rigorous bounds on their true values.

    Per point: `nn1` the tracked nearest center, `md1` its float32 distance and `ex` its exact
    float64 distance when known (NaN otherwise); the other centers computed so far have
    float32 distances >= `m2a` (each within `eps` of the truth) or exact ones >= `m2e`.
    Centers skipped by pruning are provably no closer than `nn1`.
    """

    def __init__(self, points: np.ndarray, capacity: int, chunk_size: int) -> None:
        self.x = points
        self.n, self.dim = points.shape
        self.chunk = chunk_size
        self.sq = np.einsum("ij,ij->i", points, points, dtype=np.float64)
        max_sq = float(self.sq.max())
        # Rounding-error bound of a float32 squared distance |x|^2 + |c|^2 - 2 x.c: the dot
        # product's worst case gamma_d |x||c| (any summation order), the roundings of the norms
        # and of two additions, and the float32 storage of exact values.
        self.eps = 2.02 * (self.dim + 16) * _U32 * max_sq
        self.sq32 = self.sq.astype(np.float32)
        self.md1 = np.full(self.n, np.inf, dtype=np.float32)
        self.nn1 = np.full(self.n, -1, dtype=np.int64)
        self.ex = np.full(self.n, np.nan)
        self.m2a = np.full(self.n, np.inf, dtype=np.float32)
        self.m2e = np.full(self.n, np.inf)
        self.centers = np.empty((capacity, self.dim), dtype=np.float32)
        self.center_sq = np.empty(capacity, dtype=np.float64)
        self.selected = 0
        self.groups: _Groups | None = None
        self.next_regroup = _FIRST_REGROUP
        self.skip_tests = 0
        self.backoff = 1

    def bounds(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower bounds (float64) of the true nearest-center distance of `rows`."""
        exact = self.ex[rows]
        approx = self.md1[rows].astype(np.float64)
        known = ~np.isnan(exact)
        upper = np.where(known, exact, approx + self.eps)
        others = np.minimum(self.m2a[rows].astype(np.float64) - self.eps, self.m2e[rows])
        lower = np.minimum(np.where(known, exact, approx - self.eps), others)
        return upper, lower

    def _exact_to(self, rows: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """float64 squared distances of `rows` to the centers numbered `centers`."""
        out = np.empty(len(rows))
        for start in range(0, len(rows), _EXACT_ROWS):
            part = slice(start, start + _EXACT_ROWS)
            diff = self.x[rows[part]].astype(np.float64)
            diff -= self.centers[centers[part]]
            out[part] = np.einsum("ij,ij->i", diff, diff)
        return out

    # -- adding a center ---------------------------------------------------------------------

    def add_center(self, row: int) -> None:
        t = self.selected
        center = self.x[row].copy()  # a separate vector: matmul with an aliasing view is slow
        scaled = center * np.float32(-2.0)
        self.centers[t] = center
        self.center_sq[t] = self.sq[row]
        self.selected += 1
        saved = (float(self.md1[row]), float(self.ex[row]), self.m2a[row], self.m2e[row])
        active = self._active_groups(center, row)
        if active is None:
            for start in range(0, self.n, self.chunk):
                where = slice(start, min(start + self.chunk, self.n))
                self._merge_approx(where, self._sq_dist(self.x[where], where, scaled, row), t)
            if self.groups is not None:
                self.groups.valid = False
        else:
            rows, starts = self.groups.rows(active)
            if len(rows) <= _EXACT_SHARE * self.n:
                numbers = np.full(len(rows), t)
                self._merge_exact(rows, self._exact_to(rows, numbers), t)
            else:
                for start in range(0, len(rows), self.chunk):
                    part = rows[start : start + self.chunk]
                    self._merge_approx(part, self._sq_dist(self.x[part], part, scaled, row), t)
        # The center itself: distance 0; its previous nearest joins the others.
        old_md1, old_ex, old_m2a, old_m2e = saved
        if np.isnan(old_ex):
            self.m2a[row], self.m2e[row] = min(old_m2a, np.float32(old_md1)), old_m2e
        else:
            self.m2a[row], self.m2e[row] = old_m2a, min(old_m2e, old_ex)
        self.md1[row], self.ex[row], self.nn1[row] = 0.0, 0.0, t
        if active is not None:
            self.groups.refresh(self, active, rows, starts)
        if self.selected >= self.next_regroup and self.selected <= _MAX_GROUPS:
            self.groups = _Groups(self)
            grown = int(self.selected * _REGROUP_GROWTH)
            self.next_regroup = min(grown, _MAX_GROUPS) if self.selected < _MAX_GROUPS else grown
            self.skip_tests = 0

    def _sq_dist(
        self, block: np.ndarray, where: slice | np.ndarray, scaled: np.ndarray, row: int
    ) -> np.ndarray:
        """float32 squared distances of `block` (rows `where`) to row `row`.

        `scaled` is -2 times the center (exact), so the product is -2 x.c without a pass.
        """
        dist = np.dot(block, scaled)
        dist += self.sq32[where]
        dist += self.sq32[row]
        return dist

    def _retire(self, rows: np.ndarray, old_md1: np.ndarray, old_ex: np.ndarray) -> None:
        """The tracked nearest of `rows` is being replaced: its distance joins the others."""
        was_exact = ~np.isnan(old_ex)
        exact_rows, approx_rows = rows[was_exact], rows[~was_exact]
        self.m2e[exact_rows] = np.minimum(self.m2e[exact_rows], old_ex[was_exact])
        self.m2a[approx_rows] = np.minimum(self.m2a[approx_rows], old_md1[~was_exact])

    def _merge_approx(self, where: slice | np.ndarray, dist: np.ndarray, t: int) -> None:
        """Fold float32 distances to center `t` into rows `where`."""
        first = self.md1[where]  # a view for a slice, a copy for an index array
        closer = np.flatnonzero(dist < first)
        rows = closer + where.start if isinstance(where, slice) else where[closer]
        untouched = self.m2a[rows]
        others = self.m2a[where]
        np.minimum(others, dist, out=others)
        if len(closer):
            others[closer] = untouched  # the new center is the tracked one, not an "other"
            self.m2a[where] = others
            self._retire(rows, first[closer], self.ex[rows])
            first[closer] = dist[closer]
            self.nn1[rows] = t
            self.ex[rows] = np.nan
        elif not isinstance(where, slice):
            self.m2a[where] = others
        if not isinstance(where, slice):
            self.md1[where] = first

    def _merge_exact(self, rows: np.ndarray, dist: np.ndarray, t: int) -> None:
        """Fold exact distances to center `t` into `rows`; make their tracked distance exact."""
        exact = self.ex[rows]
        current = np.where(np.isnan(exact), self.md1[rows].astype(np.float64), exact)
        closer = dist < current
        kept, moved = rows[~closer], rows[closer]
        self.m2e[kept] = np.minimum(self.m2e[kept], dist[~closer])
        if len(moved):
            self._retire(moved, self.md1[moved], exact[closer])
            self.nn1[moved] = t
            self.ex[moved] = dist[closer]
            self.md1[moved] = dist[closer]
        unknown = kept[np.isnan(exact[~closer])]
        if len(unknown):
            self.ex[unknown] = self._exact_to(unknown, self.nn1[unknown])
            self.md1[unknown] = self.ex[unknown]

    def _active_groups(self, center: np.ndarray, row: int) -> np.ndarray | None:
        """Groups the new center may change, or None for a plain full pass."""
        groups = self.groups
        if groups is None:
            return None
        if self.skip_tests > 0:
            self.skip_tests -= 1
            return None
        if not groups.valid:
            groups.refresh(self, np.arange(len(groups.sizes)), groups.order, groups.offsets)
            groups.valid = True
        dots = np.dot(groups.centers, center)
        center_dist2 = groups.center_sq - 2.0 * dots + self.sq32[row]
        lower = np.sqrt(np.maximum(center_dist2.astype(np.float64) - self.eps, 0.0)) - groups.radius
        active = np.flatnonzero(~(lower - 1e-12 > np.sqrt(groups.max_up)))
        if groups.sizes[active].sum() > _MAX_ACTIVE_SHARE * self.n:
            self.skip_tests = self.backoff
            self.backoff = min(2 * self.backoff, _MAX_BACKOFF)
            return None
        self.backoff = 1
        return active

    # -- the exact argmax --------------------------------------------------------------------

    def farthest(self) -> tuple[int, float]:
        """(row, exact squared distance) of the farthest point; ties to the lowest row."""
        groups = self.groups
        if groups is not None and groups.valid:
            floor = float(groups.max_lo.max())
            candidate_groups = np.flatnonzero(groups.max_up >= floor)
            rows, starts = groups.rows(candidate_groups)
            upper, _ = self.bounds(rows)
            candidates = np.sort(rows[upper >= floor])
        else:
            top = float(self.md1.max())
            candidates = np.flatnonzero(self.md1 >= top - 2.5 * self.eps)
        exact = self.ex[candidates]
        unknown = np.flatnonzero(np.isnan(exact))
        if len(unknown):
            exact[unknown] = self._exact_to(candidates[unknown], self.nn1[candidates[unknown]])
            self.ex[candidates[unknown]] = exact[unknown]
            self.md1[candidates[unknown]] = exact[unknown]
        others = np.minimum(
            self.m2a[candidates].astype(np.float64) - self.eps, self.m2e[candidates]
        )
        settled = others >= exact  # no other center can be closer than the tracked one
        floor = float(np.minimum(exact, others).max())
        ambiguous = np.flatnonzero(~settled & (exact >= floor))
        value = np.where(settled, exact, -np.inf)
        for start in range(0, len(ambiguous), _EXACT_ROWS):
            part = ambiguous[start : start + _EXACT_ROWS]
            value[part] = self._exact_all_centers(candidates[part])
        if groups is not None and groups.valid:
            groups.refresh(self, candidate_groups, rows, starts)
        best = float(value.max())
        return int(candidates[np.flatnonzero(value == best)[0]]), best

    def _exact_all_centers(self, rows: np.ndarray) -> np.ndarray:
        """Exact nearest-center distances of `rows` over every center; stores what it learns."""
        count = self.selected
        points = self.x[rows]
        approx = points @ self.centers[:count].T
        approx *= -2.0
        approx += self.sq32[rows][:, None]
        approx += self.center_sq[:count].astype(np.float32)[None, :]
        near = approx <= approx.min(axis=1, keepdims=True) + 2.5 * self.eps
        which, centers = np.nonzero(near)
        dist = self._exact_to(rows[which], centers)
        order = np.lexsort((dist, which))
        which, centers, dist = which[order], centers[order], dist[order]
        first = np.flatnonzero(np.concatenate([[True], which[1:] != which[:-1]]))
        nearest = np.full(len(rows), np.inf)
        nearest[which[first]] = dist[first]
        second = np.full(len(rows), np.inf)
        has_second = first + 1 < len(which)
        follow = first[has_second] + 1
        same = which[follow] == which[first[has_second]]
        second[which[follow[same]]] = dist[follow[same]]
        self.nn1[rows[which[first]]] = centers[first]
        self.ex[rows] = nearest
        self.md1[rows] = nearest
        self.m2e[rows] = second
        approx[near] = np.inf
        self.m2a[rows] = approx.min(axis=1)
        return nearest


def check_arguments(n: int, k: int, first: int, chunk_size: int) -> None:
    """Reject a `k`, `first` or `chunk_size` that does not fit `n` points (ValueError)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0 <= first < n:
        raise ValueError(f"first must be a row index in [0, {n}), got {first}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")


def _torch_device(embeddings: Any, device: str | None) -> str | None:
    """The torch device to select on, or None for the numpy path.

    `device` None or `auto`: where `embeddings` lie (a torch tensor off the CPU: there);
    `cpu`: numpy; anything else (`cuda`, `cuda:1`, ...): that torch device.
    """
    if device in (None, "auto"):
        where = getattr(embeddings, "device", None)  # torch tensors have one, numpy arrays not
        if where is None or getattr(where, "type", "cpu") == "cpu":
            return None
        return str(where)
    return None if device == "cpu" else device


def kcenter_greedy(
    embeddings: Any, k: int, first: int, chunk_size: int = 65_536, device: str | None = None
) -> KCenterResult:
    """Select up to `k` rows of `embeddings` (n, d) by KCenterGreedy, starting from `first`.

    Euclidean distances on the float32 values (other dtypes are converted). `embeddings` is a
    numpy array or a torch tensor; `device` says where to select (see `_torch_device`): a GPU
    tensor is selected on its GPU (`kcenter_torch`), everything else with numpy on the CPU.
    The selection is the same everywhere. Memory: the embeddings plus O(n + k d) floats; rows
    are processed `chunk_size` at a time.
    """
    target = _torch_device(embeddings, device)
    if target is not None:
        return kcenter_greedy_torch(embeddings, k, first, chunk_size, device=target)
    if hasattr(embeddings, "detach"):  # a torch tensor on the CPU
        embeddings = embeddings.detach().numpy()
    points = np.ascontiguousarray(embeddings, dtype=np.float32)
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(f"embeddings must be a non-empty 2-D array (n, d), got {points.shape}")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if len(bad):
        raise ValueError(f"embeddings row {int(bad[0])} has a NaN or infinite value")
    n = points.shape[0]
    check_arguments(n, k, first, chunk_size)
    capacity = min(k, n)
    state = _State(points, capacity, chunk_size)
    indices = [int(first)]
    distances = [0.0]
    state.add_center(int(first))
    final = 0.0
    while True:
        row, dist2 = state.farthest()
        if dist2 <= 0.0:
            final = 0.0
            break
        if len(indices) == capacity:
            final = float(np.sqrt(dist2))
            break
        indices.append(row)
        distances.append(float(np.sqrt(dist2)))
        state.add_center(row)
    return KCenterResult(
        indices=np.array(indices, dtype=np.int64),
        distances=np.array(distances, dtype=np.float64),
        final_radius=final,
        requested=k,
    )


def kcenter_greedy_torch(
    embeddings: Any, k: int, first: int, chunk_size: int = 65_536, device: Any = None
) -> KCenterResult:
    """`kcenter_greedy` on a torch device (default: where the tensor is; the CPU for a numpy
    array), whatever the device: the GPU path, runnable on the CPU for tests."""
    from warriorcoder.scoring import kcenter_torch

    indices, distances, final = kcenter_torch.select(
        embeddings, k, first, chunk_size, device, check_arguments
    )
    return KCenterResult(
        indices=np.array(indices, dtype=np.int64),
        distances=np.array(distances, dtype=np.float64),
        final_radius=final,
        requested=k,
    )
