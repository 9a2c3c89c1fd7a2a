"""A finished checkpoint: its fingerprint, reuse, the model card, and publishing it.

A checkpoint in `train.output_dir/final` trained on the same dataset version with the same
settings is reused instead of trained again; publishing goes through the hub's one path
(`HubStore.publish_artifact`), so a checkpoint already published is not published twice.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards.card import portable_load_snippet
from warriorcoder.dataset_cards.model_card import ModelCardFacts, write_model_card
from warriorcoder.hub import MODEL
from warriorcoder.lineage import fingerprint, package_version
from warriorcoder.training.dataset import DatasetSource
from warriorcoder.training.result import TrainResult

_NOT_FINGERPRINTED = ("output_dir", "logging_steps", "save_steps", "dataset")
"""`train` settings that do not change the weights (paths, logging, the dataset's spelling)."""


def training_fingerprint(config: ArenaConfig, source: DatasetSource) -> str:
    """sha256 of what determines a checkpoint: the dataset version and revision, the `train`
    settings (paths and logging left out) and the package version."""
    settings = config.to_card_dict()["train"]
    for key in _NOT_FINGERPRINTED:
        settings.pop(key, None)
    return fingerprint({"dataset": [source.repo_id, source.version, source.revision],
                        "train": settings, "package": package_version()})


def reusable_result(final_dir: Path, print_: str) -> TrainResult | None:
    """The finished checkpoint in `final_dir` when it was trained with fingerprint `print_`."""
    try:
        done = TrainResult.read(final_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return done if done.fingerprint == print_ else None


def portable_base_model(config: ArenaConfig) -> str:
    """`train.base_model` as a card records it: a Hub id, or a folder relative to the config's."""
    return str(config.to_card_dict()["train"]["base_model"])


def card_facts(config: ArenaConfig, result: TrainResult, prompt_example: str) -> ModelCardFacts:
    """What the model card of `result` says; no local path but relative to the config's folder."""
    source = result.dataset
    lineage: dict[str, Any] = {
        "phase": "train",
        "dataset": MODEL,
        "package_version": package_version(),
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "parent": {"repo_id": source.repo_id, "version": source.version,
                   "revision": source.revision},
        "counts": {"rows in the dataset": result.rows_in, "rows trained on": result.rows_used},
        "fingerprint": result.fingerprint,
        "config": config.to_card_dict(),
    }
    return ModelCardFacts(
        base_model=result.base_model,
        base_is_local=((config.base_dir or Path.cwd()) / config.train.base_model).exists(),
        dataset_repo=source.repo_id,
        dataset_version=source.version,
        dataset_revision=source.revision,
        load_snippet=portable_load_snippet(source, config),
        rows=[("rows in the dataset", result.rows_in), ("rows trained on", result.rows_used),
              ("rows dropped (longer than max_length)", result.rows_dropped_too_long)],
        hyperparameters=result.hyperparameters,
        global_step=result.global_step,
        final_loss=result.final_loss,
        train_loss=result.train_loss,
        loss_history=result.loss_history,
        prompt_example=prompt_example,
        license=config.hub.license,
        lineage=lineage,
    )


def write_card_and_result(config: ArenaConfig, result: TrainResult, prompt_example: str) -> None:
    """README.md (with the loss figure) and `training_result.json` into the checkpoint."""
    write_model_card(result.checkpoint_dir, card_facts(config, result, prompt_example))
    result.write(result.checkpoint_dir)


def publish_result(result: TrainResult, config: ArenaConfig, *, force: bool = False) -> str:
    """Publish the checkpoint unless the model repo's latest version holds this very one;
    records where in `training_result.json` and returns a line saying what happened."""
    from warriorcoder.training.publish import publish_checkpoint

    ref = publish_checkpoint(result.checkpoint_dir, config.hub, result.fingerprint, force=force)
    result.published = ref.spec()
    result.write(result.checkpoint_dir)
    if ref.reused:
        return f"{ref.spec()} already holds this checkpoint; not published again"
    return f"published {ref.spec()}"
