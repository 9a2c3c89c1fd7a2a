"""Dataset cards: Hub-valid metadata, a pinned load snippet, lineage, and figures linked."""

from dataclasses import dataclass

import datasets
import pytest
from huggingface_hub import DatasetCard

from warriorcoder.config import parse_config
from warriorcoder.dataset_cards import (
    CardContent,
    CardSection,
    Figure,
    card_lineage,
    markdown_table,
    render_dataset_card,
    render_png,
)
from warriorcoder.dataset_cards.card import size_category
from warriorcoder.phases import REGISTRY

CONFIG = """\
hub: {namespace: my-org, prefix: wc}
experts:
  - {name: a, model_id: org/a, urls: ["http://127.0.0.1:1"], token_env: SECRET_TOKEN_VAR}
  - {name: b, model_id: org/b, urls: ["http://127.0.0.1:2"]}
"""


@dataclass(frozen=True)
class Ref:
    dataset: str
    repo_id: str
    version: str
    revision: str
    data_files: str = "data/train-0123abcd-*.parquet"

    def load_snippet(self, relative_to: object = None) -> str:
        return f'load_dataset("{self.repo_id}", revision="{self.version}", split="train")'


def render(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECRET_TOKEN_VAR", "hf_do_not_leak_me")
    config = parse_config(CONFIG)
    rows = datasets.Dataset.from_dict({"id": ["1", "2"], "instruction": ["x", "y"]})
    figure = Figure("figures/difficulty.png", "Difficulty", render_png(lambda ax: ax.bar([1], [2])))
    content = CardContent(
        counts=[("input", 5), ("after exact dedup", 3), ("kept", 2)],
        sections=[CardSection("Difficulty", markdown_table(["level", "rows"], [["Good", 2]]),
                              (figure,))],
        experts=[{"name": "a", "model_id": "org/a", "model_revision": "abc123"}],
    )
    return render_dataset_card(
        phase=REGISTRY["filter"],
        ref=Ref("filtered", "my-org/wc-filtered", "v2", "v2"),
        parent=Ref("mined_raw", "my-org/wc-mined_raw", "v1", "0f00ba11"),
        config=config, dataset=rows, content=content,
    )


def test_card_metadata_parses_and_names_parent(monkeypatch):
    text = render(monkeypatch)
    card = DatasetCard(text)
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["size_categories"] == ["n<1K"]
    assert data["configs"][0]["data_files"][0]["path"] == "data/train-0123abcd-*.parquet"
    lineage = card_lineage(text)
    assert lineage["parent"] == {"repo_id": "my-org/wc-mined_raw", "version": "v1",
                                 "revision": "0f00ba11"}
    assert lineage["counts"] == {"input": 5, "after exact dedup": 3, "kept": 2}
    assert lineage["config"]["filter"]["min_difficulty"] == 6
    assert 'revision="v2"' in card.text
    assert "`my-org/wc-mined_raw` version `v1` (revision `0f00ba11`)" in card.text
    assert "![Difficulty](figures/difficulty.png)" in card.text
    assert "| after exact dedup | 3 |" in card.text


def test_card_never_holds_a_token_or_an_endpoint(monkeypatch):
    text = render(monkeypatch)
    assert "hf_do_not_leak_me" not in text
    assert "SECRET_TOKEN_VAR" in text  # the variable's name is recorded, not its value
    assert "127.0.0.1" not in text  # internal host names stay out of public cards
    assert "github.com" not in text  # no invented project URL


def test_record_endpoints_keeps_the_urls(monkeypatch):
    global CONFIG
    saved = CONFIG
    CONFIG = CONFIG.replace("prefix: wc}", "prefix: wc, record_endpoints: true}")
    try:
        assert "http://127.0.0.1:1" in render(monkeypatch)
    finally:
        CONFIG = saved


PORTABLE_ARENA = """\
hub: {root: data/hub, namespace: team, prefix: wc}
generation: {journal: state/journal.sqlite}
experts:
  - {name: a, model_id: org/a, urls: ["http://gpu-node-7.internal:8080"]}
  - {name: b, model_id: org/b, local: models/b}
train: {output_dir: out/ckpt}
"""


def _publish_from(folder, monkeypatch) -> str:
    from warriorcoder.builders.base import PhaseOutput
    from warriorcoder.config import load_config
    from warriorcoder.hub import HubStore
    from warriorcoder.runner import run_phase

    def fake_mine(phase_input):
        rows = datasets.Dataset.from_dict({"id": ["1"], "expert": ["a"], "instruction": ["x"]})
        return PhaseOutput(rows, CardContent(counts=[("mined", 1)]))

    monkeypatch.setattr(REGISTRY["mine"], "build", fake_mine)
    monkeypatch.setattr(REGISTRY["mine"], "uses_experts", False)
    folder.mkdir(parents=True)
    (folder / "arena.yaml").write_text(PORTABLE_ARENA)
    config = load_config(folder / "arena.yaml")
    ref = run_phase("mine", config)
    return HubStore.from_config(config.hub).read_card("mined_raw", ref.version)


def test_cards_published_from_two_folders_are_equal_apart_from_times(tmp_path, monkeypatch):
    import re

    first = _publish_from(tmp_path / "alice" / "project", monkeypatch)
    second = _publish_from(tmp_path / "bob" / "elsewhere" / "arena", monkeypatch)

    def without_times(text: str) -> str:
        text = re.sub(r"created_at: \S+", "created_at: T", text)
        text = re.sub(r"seconds: [0-9.]+", "seconds: S", text)
        text = re.sub(r"Phase time: [0-9.]+ s", "Phase time: S s", text)
        return re.sub(r"Created: \S+", "Created: T", text)

    assert without_times(first) == without_times(second)
    assert str(tmp_path) not in first and "gpu-node-7" not in first
    lineage = card_lineage(first)["config"]
    assert lineage["hub"]["root"] == "data/hub"
    assert lineage["generation"]["journal"] == "state/journal.sqlite"
    assert lineage["experts"][1]["local"] == "models/b"
    assert "load_dataset('data/hub/team/wc-mined_raw/v1', split='train')" in first


def test_card_without_lineage_is_rejected():
    with pytest.raises(ValueError, match="not written by warriorcoder"):
        card_lineage("---\nlicense: mit\n---\n# hello\n")


@pytest.mark.parametrize(("rows", "label"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"),
                                              (250_000, "100K<n<1M")])
def test_size_categories(rows, label):
    assert size_category(rows) == label


def test_png_is_a_png():
    assert render_png(lambda ax: ax.plot([0, 1], [1, 0])).startswith(b"\x89PNG")
