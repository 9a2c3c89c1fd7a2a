import numpy as np
import pytest

from warriorcoder.scoring.kcenter import (
    coverage_radius_curve,
    first_center,
    kcenter_greedy,
)


def reference_kcenter(points: np.ndarray, k: int, first: int) -> tuple[list[int], list[float]]:
    """Obviously correct: float64 distances to every center, argmax, stop at duplicates."""
    data = points.astype(np.float64)
    nearest = np.sqrt(((data - data[first]) ** 2).sum(axis=1))
    selected, distances = [first], [0.0]
    while len(selected) < k:
        best = int(np.argmax(nearest))  # the first maximum: ties go to the lowest index
        if nearest[best] == 0.0:
            break
        selected.append(best)
        distances.append(float(nearest[best]))
        nearest = np.minimum(nearest, np.sqrt(((data - data[best]) ** 2).sum(axis=1)))
    return selected, distances


def clustered(rng: np.random.Generator, n: int, dim: int, clusters: int) -> np.ndarray:
    centers = rng.standard_normal((clusters, dim))
    points = centers[rng.integers(0, clusters, n)] + 0.05 * rng.standard_normal((n, dim))
    return points.astype(np.float32)


CASES = [
    (300, 5, 120, 0),  # 0: uniform
    (1500, 24, 400, 0),
    (3000, 16, 1200, 40),  # enough centers to group points and skip groups
    (2000, 48, 600, 40),
    (2500, 12, 700, 4),  # few clusters: large groups are updated in float32
]
"""(n, dim, k, clusters) of the data shapes every implementation is checked on."""


def case_points(n: int, dim: int, clusters: int) -> tuple[np.ndarray, int]:
    """The points of a case and its first center."""
    rng = np.random.default_rng(n + dim)
    points = rng.standard_normal((n, dim)).astype(np.float32)
    if clusters:
        points = clustered(rng, n, dim, clusters)
    return points, int(rng.integers(n))


@pytest.mark.parametrize(("n", "dim", "k", "clusters"), CASES)
def test_matches_reference(n, dim, k, clusters):
    points, first = case_points(n, dim, clusters)
    result = kcenter_greedy(points, k, first, chunk_size=257)
    selected, distances = reference_kcenter(points, k, first)
    assert result.indices.tolist() == selected
    np.testing.assert_allclose(result.distances, distances, rtol=1e-9, atol=1e-12)
    assert not result.exhausted


def test_duplicates_are_never_selected_twice():
    rng = np.random.default_rng(0)
    distinct = rng.standard_normal((150, 8)).astype(np.float32)
    points = distinct[rng.integers(0, 150, 600)]  # every point repeated about 4 times
    first = 17
    result = kcenter_greedy(points, 400, first, chunk_size=100)
    selected, distances = reference_kcenter(points, 400, first)
    assert result.indices.tolist() == selected
    np.testing.assert_allclose(result.distances, distances, rtol=1e-9)
    chosen = {tuple(row) for row in points[result.indices]}
    assert len(chosen) == len(result.indices) == len({tuple(row) for row in points})
    assert result.exhausted and result.requested == 400
    assert result.final_radius == 0.0


def test_exact_selection_despite_float32_rounding():
    # Points on a sphere of radius ~1 around a far-away origin: |x|^2 ~ 6400, so float32
    # |x|^2 + |c|^2 - 2 x.c has errors ~1e-3, far above the 1e-6 differences that decide.
    rng = np.random.default_rng(1)
    directions = rng.standard_normal((2000, 64))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = 1 + 1e-6 * rng.random(2000)
    points = (10.0 + directions * radii[:, None]).astype(np.float32)
    result = kcenter_greedy(points, 300, 0)
    selected, _ = reference_kcenter(points, 300, 0)
    assert result.indices.tolist() == selected


def test_ties_go_to_the_lowest_index():
    points = np.array([[0, 0], [0, 1], [3, 0], [-3, 0], [0, -1]], dtype=np.float32)
    # From point 0: distances 1, 3, 3, 1 -> the tie between 2 and 3 goes to 2. Then 3 is at
    # min(3, 6) = 3; then 1 and 4 are both at distance 1 from point 0 -> 1, then 4.
    result = kcenter_greedy(points, 5, 0)
    assert result.indices.tolist() == [0, 2, 3, 1, 4]
    assert result.distances.tolist() == pytest.approx([0.0, 3.0, 3.0, 1.0, 1.0])


def test_coverage_curve_and_first_distance():
    rng = np.random.default_rng(2)
    points = rng.standard_normal((500, 6)).astype(np.float32)
    result = kcenter_greedy(points, 50, 3)
    curve = coverage_radius_curve(result)
    assert result.distances[0] == 0.0
    assert len(curve) == 50
    assert np.all(np.diff(curve) <= 1e-12)  # the radius never grows
    # The last value is the true radius of the selected set.
    centers = points[result.indices].astype(np.float64)
    gaps = np.sqrt(((points[:, None, :] - centers[None]) ** 2).sum(-1)).min(axis=1)
    assert curve[-1] == pytest.approx(gaps.max())
    assert curve[0] == pytest.approx(result.distances[1])


def test_k_larger_than_n_and_first_center():
    points = np.eye(4, dtype=np.float32)
    result = kcenter_greedy(points, 10, first_center(4, seed=0))
    assert sorted(result.indices.tolist()) == [0, 1, 2, 3]
    assert result.exhausted
    assert first_center(1000, seed=5) == first_center(1000, seed=5)


def test_bad_input():
    points = np.zeros((3, 2), dtype=np.float32)
    points[1, 0] = np.nan
    with pytest.raises(ValueError, match="row 1"):
        kcenter_greedy(points, 2, 0)
    with pytest.raises(ValueError, match="first"):
        kcenter_greedy(np.zeros((3, 2)), 2, 3)
    with pytest.raises(ValueError, match="k must"):
        kcenter_greedy(np.zeros((3, 2)), 0, 0)
    with pytest.raises(ValueError, match="2-D"):
        kcenter_greedy(np.zeros(3), 1, 0)
