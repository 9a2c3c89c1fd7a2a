"""`evaluate --publish` of a checkpoint that `train --push` published: the evals card names
that `model` version as its parent (found by the checkpoint's training fingerprint, not by
being the latest), so `warriorcoder report` follows sft_final -> model -> evals. A checkpoint
never published there has no parent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.sim_lineage import sim_lineage
from tests.support.tiny_models import build_tiny_llama
from warriorcoder.evaluation import EvalOptions, Settings, evaluate
from warriorcoder.evaluation.model_source import published_model
from warriorcoder.hub import EVALS, MODEL
from warriorcoder.lineage import card_lineage
from warriorcoder.report import build_report
from warriorcoder.training.dataset import DatasetSource
from warriorcoder.training.publish import publish_checkpoint
from warriorcoder.training.result import TrainResult


def _checkpoint(folder: Path, sft, fingerprint: str) -> Path:
    """A checkpoint as `warriorcoder train` leaves it: weights, `training_result.json` and a
    model card whose `warriorcoder` block names the dataset version and the fingerprint."""
    source = DatasetSource(sft.repo_id, sft.version, sft.location, sft.revision)
    TrainResult(checkpoint_dir=folder, base_model="tiny", dataset=source, rows_in=20,
                rows_used=20, rows_dropped_too_long=0, global_step=1, final_loss=1.0,
                train_loss=1.0, fingerprint=fingerprint).write(folder)
    block = {"phase": "train", "dataset": MODEL, "fingerprint": fingerprint,
             "parent": {"repo_id": sft.repo_id, "version": sft.version,
                        "revision": sft.revision}}
    (folder / "README.md").write_text(
        f"---\n{yaml.safe_dump({'warriorcoder': block}, sort_keys=False)}---\n# model\n")
    return folder


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("evals-parent")
    config, store = sim_lineage(root)
    sft = store.latest("sft_final")
    trained = build_tiny_llama(root / "checkpoints" / "final", hidden_size=32, num_layers=1)
    _checkpoint(trained, sft, "a" * 64)
    for name, print_ in (("before", "b" * 64), ("after", "c" * 64)):  # v1 and v3: not it
        other = root / name
        shutil.copytree(trained, other)
        _checkpoint(other, sft, print_)
        publish_checkpoint(other, config.hub, print_)
        if name == "before":
            ours = publish_checkpoint(trained, config.hub, "a" * 64)
    return config, store, trained, ours


def test_the_evals_card_names_the_published_model_and_the_report_links_it(arena) -> None:
    config, store, trained, ours = arena
    assert [r.version for r in store.versions(MODEL)] == ["v1", "v2", "v3"]
    assert published_model(store, trained) == ours and ours.version == "v2"
    report = evaluate(config, str(trained), EvalOptions(
        benchmarks=["humaneval"], limit=1, max_new_tokens=8, settings=Settings(workers=1),
        publish=True, progress=False))
    evals = report.published
    block = card_lineage(store.read_card(EVALS, evals.version))
    assert block["parent"] == {"repo_id": ours.repo_id, "version": "v2",
                               "revision": ours.revision}
    page = build_report(store, "sft_final@v1")
    assert f"<td>{ours.repo_id}</td><td>v2</td>" in page
    assert f"<td>{evals.repo_id}</td><td>{evals.version}</td>" in page


def test_a_checkpoint_never_published_has_no_parent(arena, tmp_path: Path) -> None:
    config, store, trained, _ = arena
    unknown = _checkpoint(Path(shutil.copytree(trained, tmp_path / "final")),
                          store.latest("sft_final"), "d" * 64)
    assert published_model(store, unknown) is None
    (unknown / "training_result.json").unlink()
    (unknown / "README.md").write_text("# a model not trained by warriorcoder\n")
    assert published_model(store, unknown) is None
