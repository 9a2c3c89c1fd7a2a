"""KCenterGreedy speed: ours vs a plain float32 loop, the memory-bandwidth floor and the reference.

    python benchmarks/kcenter.py --no-reference  # n=50,000, k=5,000, d in {384, 1024}
    python benchmarks/kcenter.py --quick         # n=10,000, k=1,000
    python benchmarks/kcenter.py --repeats 3     # min of 3 interleaved runs (a shared machine)

Data: unit vectors, either uniform on the sphere or a mixture of tight Gaussian clusters.
Floor: k passes over the n x d float32 matrix at the measured memory bandwidth: a copy of the
matrix (bytes read + written per second, best of 10), or a float32 matrix-vector product when
that reads faster (columns "copy GB/s", "mv GB/s"). "plain32" is a plain float32 numpy loop
(not exact on near-ties). Reference: sklearn `pairwise_distances` per step in float64
(google/active-learning `kcenter_greedy.py`); "same" compares its indices with ours. Every
repeat times ours, plain32 and the bandwidth in turn; the table shows the minimum of each.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from warriorcoder.scoring.kcenter import kcenter_greedy


def make_data(kind: str, n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        points = rng.standard_normal((n, dim))
    else:
        centers = rng.standard_normal((clusters, dim))
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        points = centers[rng.integers(0, clusters, n)]
        points = points + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def reference(points: np.ndarray, k: int, first: int) -> np.ndarray:
    """The original active-learning code's loop: sklearn distances in float64 per step."""
    from sklearn.metrics import pairwise_distances

    features = points.astype(np.float64)
    selected = [first]
    min_dist = pairwise_distances(features, features[[first]]).ravel()
    for _ in range(k - 1):
        index = int(np.argmax(min_dist))
        selected.append(index)
        np.minimum(min_dist, pairwise_distances(features, features[[index]]).ravel(), out=min_dist)
    return np.array(selected)


def plain32(points: np.ndarray, k: int, first: int) -> np.ndarray:
    """A plain float32 loop (|x|^2 + |c|^2 - 2 x.c): fast, not exact on near-ties."""
    sq = np.einsum("ij,ij->i", points, points)
    min_dist = np.full(len(points), np.inf, dtype=np.float32)
    selected = [first]
    for _ in range(k):
        center = selected[-1]
        dist = np.dot(points, points[center].copy())
        dist *= -2.0
        dist += sq
        dist += sq[center]
        np.minimum(min_dist, dist, out=min_dist)
        if len(selected) < k:
            selected.append(int(np.argmax(min_dist)))
        else:
            break
    return np.array(selected)


CLOCK = time.perf_counter


def bandwidths(points: np.ndarray, tries: int = 10) -> tuple[float, float]:
    """(copy, matrix-vector) bytes per second over `points`, best of `tries` each."""
    target = np.empty_like(points)
    center = points[0].copy()
    copy = vector = np.inf
    for _ in range(tries):
        start = CLOCK()
        np.copyto(target, points)
        copy = min(copy, CLOCK() - start)
        start = CLOCK()
        np.dot(points, center)
        vector = min(vector, CLOCK() - start)
    return 2 * points.nbytes / copy, points.nbytes / vector


def timed(fn, *args):
    start = CLOCK()
    out = fn(*args)
    return out, CLOCK() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n=10,000, k=1,000")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--kinds", nargs="+", default=["uniform", "clustered"])
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--spread", type=float, default=0.1, help="cluster std (norm of noise)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; min is shown")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with process CPU time (steadier on a shared machine; pair it with "
        "OPENBLAS_NUM_THREADS=1 so that CPU time is wall time on an idle one)",
    )
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    n = args.n or (10_000 if args.quick else 50_000)
    k = args.k or (1_000 if args.quick else 5_000)

    header = (
        f"{'data':<10} {'dim':>5} {'n':>7} {'k':>6} {'ours s':>8} {'plain32 s':>9} "
        f"{'floor s':>8} {'copy GB/s':>9} {'mv GB/s':>7} {'/floor':>7} {'/plain':>7} "
        f"{'ref s':>8} {'x ref':>7} {'same':>5}"
    )
    print(header)
    print("-" * len(header))
    for kind in args.kinds:
        for dim in args.dims:
            points = make_data(kind, n, dim, args.clusters, args.spread, args.seed)
            first = 0
            ours = plain = np.inf
            copy_bw = vector_bw = 0.0
            for _ in range(args.repeats):
                copy, vector = bandwidths(points)
                copy_bw, vector_bw = max(copy_bw, copy), max(vector_bw, vector)
                result, seconds = timed(kcenter_greedy, points, k, first)
                ours = min(ours, seconds)
                _, seconds = timed(plain32, points, k, first)
                plain = min(plain, seconds)
            floor = k * points.nbytes / max(copy_bw, vector_bw)
            if args.no_reference:
                ref_s, same, speedup = float("nan"), "-", float("nan")
            else:
                selected, ref_s = timed(reference, points, k, first)
                same = "yes" if np.array_equal(selected, result.indices) else "NO"
                speedup = ref_s / ours
            print(
                f"{kind:<10} {dim:>5} {n:>7} {k:>6} {ours:>8.2f} {plain:>9.2f} {floor:>8.2f} "
                f"{copy_bw / 1e9:>9.1f} {vector_bw / 1e9:>7.1f} {ours / floor:>7.2f} "
                f"{ours / plain:>7.2f} {ref_s:>8.1f} {speedup:>7.1f} {same:>5}",
                flush=True,
            )


if __name__ == "__main__":
    main()
