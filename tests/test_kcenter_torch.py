"""The torch path of KCenterGreedy (run on a GPU in production) equals the numpy path.

Run here on the CPU, so CI keeps the GPU code honest without a GPU: same indices, same
distances, on every data shape of `test_kcenter.py`.
"""

import numpy as np
import pytest

from tests.test_kcenter import CASES, case_points, reference_kcenter
from warriorcoder.scoring import kcenter_torch
from warriorcoder.scoring.kcenter import kcenter_greedy, kcenter_greedy_torch

torch = pytest.importorskip("torch")


def assert_same(points: np.ndarray, k: int, first: int, **options) -> None:
    expected = kcenter_greedy(points, k, first)
    got = kcenter_greedy_torch(torch.from_numpy(points), k, first, **options)
    assert got.indices.tolist() == expected.indices.tolist()
    np.testing.assert_allclose(got.distances, expected.distances, rtol=1e-12, atol=1e-15)
    assert got.final_radius == pytest.approx(expected.final_radius, rel=1e-12)
    assert got.requested == expected.requested and got.exhausted == expected.exhausted


@pytest.mark.parametrize(("n", "dim", "k", "clusters"), CASES)
def test_same_selection_as_numpy(n, dim, k, clusters):
    points, first = case_points(n, dim, clusters)
    assert_same(points, k, first, chunk_size=257)


def test_duplicates_stop_the_selection():
    rng = np.random.default_rng(0)
    distinct = rng.standard_normal((150, 8)).astype(np.float32)
    points = distinct[rng.integers(0, 150, 600)]
    assert_same(points, 400, 17, chunk_size=100)


def test_exact_despite_float32_rounding(monkeypatch):
    # Near-ties far below the float32 error: the exact check against every center decides,
    # in blocks smaller than the rows checked.
    rng = np.random.default_rng(1)
    directions = rng.standard_normal((600, 64))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = 1 + 1e-6 * rng.random(600)
    points = (10.0 + directions * radii[:, None]).astype(np.float32)
    monkeypatch.setattr(kcenter_torch, "_CHECK_ELEMENTS", 30_000)
    assert_same(points, 150, 0)
    selected, _ = reference_kcenter(points, 150, 0)
    assert kcenter_greedy_torch(points, 150, 0).indices.tolist() == selected


def test_ties_go_to_the_lowest_index():
    points = np.array([[0, 0], [0, 1], [3, 0], [-3, 0], [0, -1]], dtype=np.float32)
    result = kcenter_greedy_torch(torch.from_numpy(points), 5, 0)
    assert result.indices.tolist() == [0, 2, 3, 1, 4]


def test_many_equal_candidates_beyond_the_top_few():
    # 200 points at exactly the same distance from the first: more candidates than the
    # device-side top list holds, so the full candidate list decides (lowest index first).
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 4
    points = np.concatenate([[[0.0, 0.0]], ring]).astype(np.float32)
    assert_same(points, 60, 0)


def test_float64_and_numpy_input_and_bad_input():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((400, 7))  # float64: converted to float32 like numpy's path
    expected = kcenter_greedy(points, 50, 5)
    assert kcenter_greedy_torch(points, 50, 5).indices.tolist() == expected.indices.tolist()
    bad = torch.zeros((3, 2))
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="row 2"):
        kcenter_greedy_torch(bad, 2, 0)
    with pytest.raises(ValueError, match="first"):
        kcenter_greedy_torch(torch.zeros((3, 2)), 2, 3)
    with pytest.raises(ValueError, match="2-D"):
        kcenter_greedy_torch(torch.zeros(3), 1, 0)


def test_dispatch_keeps_cpu_tensors_on_the_numpy_path(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the torch path was taken")

    monkeypatch.setattr(kcenter_torch, "select", fail)
    points, first = case_points(300, 5, 0)
    expected = kcenter_greedy(points, 40, first)
    for device in (None, "auto", "cpu"):
        got = kcenter_greedy(torch.from_numpy(points), 40, first, device=device)
        assert got.indices.tolist() == expected.indices.tolist()


def test_dispatch_sends_a_named_device_to_torch(monkeypatch):
    seen = {}

    real = kcenter_torch.select

    def record(embeddings, k, first, chunk_size, device, check):
        seen["device"] = device
        return real(embeddings, k, first, chunk_size, "cpu", check)

    monkeypatch.setattr(kcenter_torch, "select", record)
    points, first = case_points(300, 5, 0)
    got = kcenter_greedy(points, 40, first, device="cuda:1")
    assert seen["device"] == "cuda:1"
    assert got.indices.tolist() == kcenter_greedy(points, 40, first).indices.tolist()


def test_embeddings_handed_over_as_a_tensor_select_the_same_rows():
    from tests.test_phase_compress import MODEL
    from warriorcoder.builders import compress

    texts = [f"Write a function that {verb} a {noun}." for verb in ("sorts", "reverses", "parses")
             for noun in ("list", "string", "tree", "graph")]
    array = compress.embed_instructions(texts, MODEL, batch_size=4)
    tensor = compress._embed_to_tensor(texts, MODEL, 4, ["cpu"], "cpu")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), array, atol=1e-6)
    from_tensor = kcenter_greedy_torch(tensor, 6, 0)
    assert from_tensor.indices.tolist() == kcenter_greedy(array, 6, 0).indices.tolist()
