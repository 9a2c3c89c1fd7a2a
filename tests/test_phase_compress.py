"""`compress` -> `compressed`: KCenterGreedy over all-MiniLM-L6-v2 embeddings of instructions.

Compress makes no LLM calls, so its parent is a small `filtered` version published directly.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard

from tests.support.sim_instructions import instruction_text, sim_config
from warriorcoder.builders import compress
from warriorcoder.builders.compress import RADIUS_FIGURE, embed_instructions, embedding_devices
from warriorcoder.config import ArenaConfig
from warriorcoder.errors import InputDatasetError
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase
from warriorcoder.scoring.kcenter import first_center

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DUPLICATED = (3, 7, 11)
"""Ranks whose instruction appears twice in the parent."""


def _parent_rows(n: int = 30) -> list[dict]:
    rows = []
    for rank in range(n):
        rows.append({"id": f"row{rank:03d}", "expert": ("alpha", "beta", "gamma")[rank % 3],
                     "model_id": f"sim/{('alpha', 'beta', 'gamma')[rank % 3]}-coder",
                     "model_revision": "abc123", "instruction": instruction_text(rank)})
    for rank in DUPLICATED:
        rows.append({**rows[rank], "id": f"dup{rank:03d}"})
    return rows


def _config(root: Path, size: int) -> ArenaConfig:
    urls = {name: f"http://127.0.0.1:9/{name}" for name in ("alpha", "beta", "gamma")}
    config = sim_config(root, urls, compress_size=size, embedding_model=MODEL)
    config.compress.seed = 3
    return config


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("compress")
    config = _config(root, size=8)
    store = open_store(config.hub)
    dataset = datasets.Dataset.from_list(_parent_rows())
    ref = store.publish("filtered", dataset,
                        lambda ref: "---\npretty_name: parent\n---\n# parent\n")
    return root, store, ref, dataset


@pytest.fixture(scope="module")
def embeddings(parent) -> np.ndarray:
    *_, dataset = parent
    return embed_instructions(dataset["instruction"], MODEL, batch_size=32)


def _reference_selection(points: np.ndarray, k: int, first: int) -> list[int]:
    """Farthest-first by brute force in float64; ties to the lowest index."""
    points = points.astype(np.float64)
    chosen = [first]
    nearest = np.linalg.norm(points - points[first], axis=1)
    while len(chosen) < k and nearest.max() > 0:
        best = int(np.flatnonzero(nearest == nearest.max())[0])
        chosen.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
    return chosen


def test_selection_is_farthest_first_over_the_embeddings(parent, embeddings) -> None:
    root, store, _, dataset = parent
    config = _config(root, size=8)
    ref = run_phase("compress", config, store=store)
    rows = store.load("compressed", ref.version)
    first = first_center(len(dataset), config.compress.seed)
    expected = _reference_selection(embeddings, 8, first)
    assert rows["id"] == [dataset[i]["id"] for i in expected]
    assert rows["kcenter_rank"] == list(range(8))
    distances = rows["kcenter_distance"]
    assert distances[0] is None
    assert all(a >= b > 0 for a, b in zip(distances[1:], distances[2:], strict=False))
    for got, index in zip(distances[1:], expected[1:], strict=True):
        nearest = min(np.linalg.norm(embeddings[index] - embeddings[j])
                      for j in expected[: expected.index(index)])
        assert got == pytest.approx(nearest, abs=1e-5)
    assert set(rows.column_names) >= {"id", "expert", "instruction", "kcenter_distance"}


def test_asking_for_more_than_there_is_takes_each_distinct_row_once(parent) -> None:
    root, store, _, dataset = parent
    ref = run_phase("compress", _config(root, size=1000), store=store)
    rows = store.load("compressed", ref.version)
    assert len(rows) == len(dataset) - len(DUPLICATED)
    assert len(set(rows["instruction"])) == len(rows)
    card = (Path(ref.location) / "README.md").read_text()
    assert "1000 asked" in card


def test_card_records_first_center_parent_and_radius_curve(parent, tmp_path: Path) -> None:
    root, store, parent_ref, dataset = parent
    config = _config(root, size=5)
    ref = run_phase("compress", config, store=store)
    folder = Path(ref.location)
    assert (folder / RADIUS_FIGURE).read_bytes().startswith(b"\x89PNG")
    card = DatasetCard.load(folder / "README.md")
    lineage = card.data.to_dict()["warriorcoder"]
    assert lineage["parent"]["version"] == parent_ref.version
    assert lineage["counts"] == {"filtered rows": len(dataset), "selected by KCenterGreedy": 5}
    first = first_center(len(dataset), config.compress.seed)
    assert f"row {first} of the parent, id `{dataset[first]['id']}`" in card.text
    assert {e["name"] for e in lineage["experts"]} == {"alpha", "beta", "gamma"}
    loaded = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path))
    assert loaded["id"] == store.load("compressed", ref.version)["id"]


def test_same_seed_same_selection_and_the_seed_picks_the_start(parent) -> None:
    root, store, _, dataset = parent
    config = _config(root, size=6)
    a = store.load("compressed", run_phase("compress", config, store=store).version)
    b = store.load("compressed", run_phase("compress", config, store=store).version)
    assert a["id"] == b["id"]
    for seed in (4,):
        config.compress.seed = seed
        c = store.load("compressed", run_phase("compress", config, store=store).version)
        assert c["id"][0] == dataset[first_center(len(dataset), seed)]["id"]


def test_empty_parent_is_a_clear_error(tmp_path: Path) -> None:
    empty = datasets.Dataset.from_list(_parent_rows()).select([])
    with pytest.raises(InputDatasetError, match="compress: local/wc-filtered@v1 has no rows"):
        compress.PHASE.check_columns(empty, "local/wc-filtered@v1")


def test_devices_are_every_gpu_when_several(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    for count, expected in ((0, ["cpu"]), (1, ["cuda"]), (3, ["cuda:0", "cuda:1", "cuda:2"])):
        monkeypatch.setattr(torch.cuda, "device_count", lambda count=count: count)
        assert embedding_devices() == expected


@pytest.mark.slow
def test_several_gpus_use_a_multi_process_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """With more than one device the model is encoded through sentence-transformers' pool
    (here faked with a CPU worker so the path runs on this machine)."""
    from sentence_transformers import SentenceTransformer

    started: list[list[str]] = []
    real_start = SentenceTransformer.start_multi_process_pool

    def start(self, target_devices=None):
        started.append(list(target_devices))
        return real_start(self, ["cpu"])

    monkeypatch.setattr(compress, "embedding_devices", lambda: ["cuda:0", "cuda:1"])
    monkeypatch.setattr(SentenceTransformer, "start_multi_process_pool", start)
    texts = [instruction_text(rank) for rank in range(6)]
    pooled = embed_instructions(texts, MODEL, batch_size=4)
    assert started == [["cuda:0", "cuda:1"]]
    monkeypatch.setattr(compress, "embedding_devices", lambda: ["cpu"])
    single = embed_instructions(texts, MODEL, batch_size=4)
    np.testing.assert_allclose(pooled, single, atol=1e-5)
