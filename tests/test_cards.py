"""Dataset cards: Hub-valid metadata, a pinned load snippet, lineage, and figures linked."""

from dataclasses import dataclass

import datasets
import pytest
from huggingface_hub import DatasetCard

from warriorcoder.builders import REGISTRY
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
    from warriorcoder.hub import open_store
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
    return open_store(config.hub).read_card("mined_raw", ref.version)


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
    # relative to the folder that holds the hub's root folder, where the card says to run it
    assert ("# a local version: run this from the folder that holds `hub/`\n"
            "ds = load_dataset('hub/team/wc-mined_raw/v1', split='train')") in first


def test_card_without_lineage_is_rejected():
    with pytest.raises(ValueError, match="not written by warriorcoder"):
        card_lineage("---\nlicense: mit\n---\n# hello\n")


@pytest.mark.parametrize(("rows", "label"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"),
                                              (250_000, "100K<n<1M")])
def test_size_categories(rows, label):
    assert size_category(rows) == label


def test_png_is_a_png():
    assert render_png(lambda ax: ax.plot([0, 1], [1, 0])).startswith(b"\x89PNG")


def _publish_model_and_evals_from(folder) -> dict[str, bytes]:
    """Train nothing, but save, card and publish a checkpoint as training does (the Trainer's
    own `save_model`, so `training_args.bin` holds this folder's absolute `output_dir`), and
    score and publish evals: every published file of `model` v1 and `evals` v1."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from tests.support.tiny_models import build_tiny_llama
    from warriorcoder.config import load_config
    from warriorcoder.evaluation import EvalOptions, Settings, evaluate
    from warriorcoder.hub import open_store
    from warriorcoder.training.checkpoint import (
        portable_base_model,
        publish_result,
        training_fingerprint,
        write_card_and_result,
    )
    from warriorcoder.training.dataset import load_sft_dataset
    from warriorcoder.training.result import TrainResult

    config = load_config(folder / "arena.yaml")
    store = open_store(config.hub)
    rows = datasets.Dataset.from_dict({"instruction": ["x"], "response": ["y"]})
    store.publish("sft_final", rows, lambda ref: f"# sft_final {ref.version}\n")
    _, source = load_sft_dataset(config, None)
    base = build_tiny_llama(folder / "models" / "base")
    final = Path(config.train.output_dir) / "final"
    trainer = Trainer(model=AutoModelForCausalLM.from_pretrained(base),
                      args=TrainingArguments(output_dir=str(config.train.output_dir),
                                             report_to=[]),
                      processing_class=AutoTokenizer.from_pretrained(base))
    trainer.save_model(str(final))
    result = TrainResult(
        checkpoint_dir=final, base_model=portable_base_model(config), dataset=source,
        rows_in=1, rows_used=1, rows_dropped_too_long=0, global_step=1, final_loss=0.5,
        train_loss=0.5, loss_history=[(1, 0.5)], hyperparameters={"learning_rate": 1e-05},
        fingerprint=training_fingerprint(config, source),
    )
    write_card_and_result(config, result, "<instruction>")
    publish_result(result, config)
    fixtures = Path(__file__).parent / "fixtures" / "evalplus"
    evaluate(config, None, EvalOptions(
        samples=fixtures / "samples-humaneval.jsonl",
        humaneval_plus=str(fixtures / "HumanEvalPlus-Mini4.jsonl.gz"),
        settings=Settings(workers=2), publish=True))
    published = {}
    for name in ("model", "evals"):
        root = Path(store.get(name, "v1").location)
        published |= {f"{name}/{p.relative_to(root).as_posix()}": p.read_bytes()
                      for p in sorted(root.rglob("*")) if p.is_file()}
    return published


def test_model_and_evals_published_from_two_folders_name_no_local_path(tmp_path):
    import re

    files = []
    for where in (tmp_path / "alice" / "project", tmp_path / "bob" / "elsewhere" / "arena"):
        where.mkdir(parents=True)
        (where / "arena.yaml").write_text(PORTABLE_ARENA.replace(
            "train: {output_dir: out/ckpt}", "train: {output_dir: out/ckpt, base_model: "
            "models/base}"))
        files.append(_publish_model_and_evals_from(where))
    first, second = files
    assert "model/model.safetensors" in first and "model/README.md" in first
    assert "model/training_args.bin" not in first  # a pickle of the machine's paths
    for name, content in first.items():
        for folder in ("/alice/", "/bob/", str(tmp_path)):  # ("alice" is a BPE token)
            assert folder.encode() not in content, f"{name} names {folder}"

    def without_times(text: str) -> str:
        text = re.sub(r"created_at: \S+", "created_at: T", text)
        return re.sub(r"train-\*-[0-9a-f]+\.parquet", "train-*-H.parquet", text)  # durations

    assert without_times(first["model/README.md"].decode()) == without_times(
        second["model/README.md"].decode())
    assert without_times(first["evals/README.md"].decode()) == without_times(
        second["evals/README.md"].decode())
    same = [n for n in first if n.startswith("model/") and n != "model/README.md"]
    assert same and all(first[n] == second[n] for n in same)
    model_card = first["model/README.md"].decode()
    assert "`team/wc-sft_final`" in model_card and "| version | `v1` |" in model_card
    assert "`models/base` (a local folder)" in model_card
