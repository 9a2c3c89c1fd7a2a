"""KCenterGreedy on a torch device (a GPU): the same selection as `kcenter.kcenter_greedy`.

Used through `kcenter.kcenter_greedy` (a GPU tensor, or `device=`) or `kcenter_greedy_torch`.

Each step is one float32 matrix-vector product over the embeddings where they lie (no pruning:
on a GPU a full pass costs about as much as the bookkeeping pruning needs), and the argmax is
decided exactly as on the CPU: every point keeps its float32 nearest-center distance `md1`
(within the rigorous rounding bound `eps` of the truth), the center it belongs to `nn1`, and
bounds on its distance to every other center (`m2a`, float32 within `eps`; `m2e`, exact). The
candidates are the points with `md1` within 2.5 `eps` of the maximum; their distance to `nn1` is
computed in float64, and a candidate whose other centers are not provably farther is checked
against every center once (what it learns is kept until a new center comes closer). So the
indices are those of the float64 reference (ties to the lowest index), the same as the numpy
path's. Per step the host waits once, for a handful of numbers (the top candidates).

Memory on the device: the float32 embeddings plus O(n + k) numbers; the exact check against
every center works on blocks of rows sized by `chunk_size`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_TOP = 32  # candidates looked at on the device before falling back to a full candidate list
_CHECK_ELEMENTS = 1 << 24  # rows x centers per block of the exact check against every center


def select(
    embeddings: Any,
    k: int,
    first: int,
    chunk_size: int,
    device: str | torch.device | None,
    check_arguments: Callable[[int, int, int, int], None],
) -> tuple[list[int], list[float], float]:
    """KCenterGreedy of `embeddings` (a torch tensor or numpy array, n x d) on a torch device:
    (indices, distances, final radius), which `kcenter.kcenter_greedy_torch` wraps.

    `device`: where to run (default: where the tensor is; the CPU for a numpy array).
    `check_arguments(n, k, first, chunk_size)` rejects bad arguments (kcenter's checks).
    """
    import torch

    if isinstance(embeddings, torch.Tensor):
        target = torch.device(device) if device is not None else embeddings.device
        points = embeddings.detach().to(device=target, dtype=torch.float32).contiguous()
    else:
        array = np.ascontiguousarray(embeddings, dtype=np.float32)
        target = torch.device(device) if device is not None else torch.device("cpu")
        points = torch.from_numpy(array).to(target)
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(
            f"embeddings must be a non-empty 2-D array (n, d), got {tuple(points.shape)}"
        )
    finite = torch.isfinite(points).all(dim=1)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite)[0, 0])
        raise ValueError(f"embeddings row {bad} has a NaN or infinite value")
    check_arguments(points.shape[0], k, first, chunk_size)
    with _ieee_float32_matmul():
        state = _TorchState(points, min(k, points.shape[0]), chunk_size)
        return state.run(int(first))


@contextmanager
def _ieee_float32_matmul() -> Iterator[None]:
    """No TF32 inside: the error bound assumes float32 products and sums."""
    import torch

    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


class _TorchState:
    """Nearest-center distances of every point on the device, with the centers chosen so far."""

    def __init__(self, points: torch.Tensor, capacity: int, chunk_size: int) -> None:
        import torch

        self.torch = torch
        self.x = points
        self.n, self.dim = points.shape
        self.chunk = chunk_size
        self.device = points.device
        sq = torch.empty(self.n, dtype=torch.float64, device=self.device)
        for start in range(0, self.n, chunk_size):
            block = points[start : start + chunk_size].double()
            sq[start : start + chunk_size] = (block * block).sum(dim=1)
        self.sq32 = sq.float()
        max_sq = float(sq.max())
        self.eps = 2.02 * (self.dim + 16) * _U32 * max_sq  # as in `kcenter._State`
        self.md1 = torch.full((self.n,), math.inf, dtype=torch.float32, device=self.device)
        self.m2a = torch.full((self.n,), math.inf, dtype=torch.float32, device=self.device)
        self.m2e = torch.full((self.n,), math.inf, dtype=torch.float64, device=self.device)
        self.ex = torch.full((self.n,), math.nan, dtype=torch.float64, device=self.device)
        self.nn1 = torch.zeros(self.n, dtype=torch.int64, device=self.device)
        self.center_rows = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.selected = 0
        self.top = min(_TOP, self.n)

    def run(self, first: int) -> tuple[list[int], list[float], float]:
        capacity = len(self.center_rows)
        indices, distances = [first], [0.0]
        self.add_center(first)
        while True:
            row, dist2 = self.farthest()
            if dist2 <= 0.0:
                final = 0.0
                break
            if len(indices) == capacity:
                final = math.sqrt(dist2)
                break
            indices.append(row)
            distances.append(math.sqrt(dist2))
            self.add_center(row)
        return indices, distances, final

    def add_center(self, row: int) -> None:
        """Fold the float32 distances to the new center `row` into every point's bounds."""
        torch = self.torch
        t = self.selected
        self.center_rows[t] = row
        self.selected += 1
        # |x|^2 - 2 x.c + |c|^2, in the order of the numpy path (same error bound).
        dist = torch.addmv(self.sq32, self.x, self.x[row], alpha=-2.0)
        dist += self.sq32[row]
        closer = dist < self.md1
        # The tracked nearest of a row that changes center joins the others (exact or not).
        known = ~torch.isnan(self.ex)
        retire_exact = closer & known
        torch.where(retire_exact, torch.minimum(self.m2e, self.ex), self.m2e, out=self.m2e)
        retired = torch.where(known, self.m2a, torch.minimum(self.m2a, self.md1))
        torch.where(closer, retired, torch.minimum(self.m2a, dist), out=self.m2a)
        torch.minimum(self.md1, dist, out=self.md1)
        self.nn1.masked_fill_(closer, t)
        self.ex.masked_fill_(closer, math.nan)
        # The center itself: exactly 0 from its own center.
        self.md1[row] = 0.0
        self.ex[row] = 0.0
        self.nn1[row] = t

    def _others(self, rows: torch.Tensor) -> torch.Tensor:
        """Lower bounds (float64) of the distances of `rows` to their other centers."""
        return self.torch.minimum(self.m2a[rows].double() - self.eps, self.m2e[rows])

    def _exact_to_nearest(self, rows: torch.Tensor) -> torch.Tensor:
        """float64 squared distances of `rows` to their tracked nearest center."""
        diff = self.x[rows].double() - self.x[self.center_rows[self.nn1[rows]]].double()
        return (diff * diff).sum(dim=1)

    def farthest(self) -> tuple[int, float]:
        """(row, exact squared distance) of the farthest point; ties to the lowest row."""
        torch = self.torch
        values, rows = torch.topk(self.md1, self.top)
        threshold = values[0] - 2.5 * self.eps
        candidate = values >= threshold
        exact = self._exact_to_nearest(rows)
        others = self._others(rows)
        settled = others >= exact
        floor = torch.where(candidate, torch.minimum(exact, others), -math.inf).max()
        ambiguous = candidate & ~settled & (exact >= floor)
        overflow = (values[-1] >= threshold) & (self.top < self.n)
        value = torch.where(candidate & settled, exact, -math.inf)
        flags = (ambiguous.any() | overflow).double().reshape(1)
        packed = torch.cat([flags, value, rows.double()]).cpu().numpy()  # the one wait per step
        if packed[0]:
            return self._farthest_all()
        value, rows_host = packed[1 : 1 + self.top], packed[1 + self.top :].astype(np.int64)
        best = float(value.max())
        return int(rows_host[value == best].min()), best

    def _farthest_all(self) -> tuple[int, float]:
        """The argmax over every candidate, checking ambiguous ones against every center."""
        torch = self.torch
        top = float(self.md1.max())
        rows = torch.nonzero(self.md1 >= top - 2.5 * self.eps).flatten()  # ascending
        exact = self._exact_to_nearest(rows)
        others = self._others(rows)
        settled = others >= exact
        floor = torch.minimum(exact, others).max()
        ambiguous = torch.nonzero(~settled & (exact >= floor)).flatten()
        value = torch.where(settled, exact, -math.inf)
        if len(ambiguous):
            value[ambiguous] = self._exact_all_centers(rows[ambiguous])
        best = float(value.max())
        return int(rows[torch.nonzero(value == best)[0, 0]]), best

    def _exact_all_centers(self, rows: torch.Tensor) -> torch.Tensor:
        """Exact nearest-center squared distances of `rows` over every center chosen so far."""
        torch = self.torch
        count = self.selected
        center_rows = self.center_rows[:count]
        centers = self.x[center_rows]
        center_sq = self.sq32[center_rows]
        out = torch.empty(len(rows), dtype=torch.float64, device=self.device)
        block = max(1, _CHECK_ELEMENTS // count)
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            approx = torch.addmm(center_sq[None, :], self.x[part], centers.T, alpha=-2.0)
            approx += self.sq32[part][:, None]
            near = approx <= approx.min(dim=1, keepdim=True).values + 2.5 * self.eps
            which, centers_near = torch.nonzero(near, as_tuple=True)
            diff = self.x[part[which]].double() - centers[centers_near].double()
            dist = (diff * diff).sum(dim=1)
            out[start : start + block] = self._learn(part, approx, near, which, centers_near, dist)
        return out

    def _learn(
        self,
        rows: torch.Tensor,
        approx: torch.Tensor,
        near: torch.Tensor,
        which: torch.Tensor,
        centers: torch.Tensor,
        dist: torch.Tensor,
    ) -> torch.Tensor:
        """Keep what a check against every center found: exact nearest and second nearest."""
        torch = self.torch
        order = torch.argsort(dist, stable=True)
        order = order[torch.argsort(which[order], stable=True)]
        which, centers, dist = which[order], centers[order], dist[order]
        first = torch.ones_like(which, dtype=torch.bool)
        first[1:] = which[1:] != which[:-1]
        starts = torch.nonzero(first).flatten()
        nearest = dist[starts]  # every row has at least its approximate nearest among `near`
        second = torch.full_like(nearest, math.inf)
        follow = starts + 1
        has_second = follow < len(which)
        has_second[has_second.clone()] = which[follow[has_second]] == which[starts[has_second]]
        second[has_second] = dist[follow[has_second]]
        self.nn1[rows] = centers[starts]
        self.ex[rows] = nearest
        self.md1[rows] = nearest.float()
        self.m2e[rows] = second
        self.m2a[rows] = approx.masked_fill(near, math.inf).min(dim=1).values
        return nearest
