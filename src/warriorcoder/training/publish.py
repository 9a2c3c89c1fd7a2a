"""Publish a trained checkpoint (weights, tokenizer, card) as the next `vN` of the model repo.

The checkpoint goes through the hub store like every dataset version: the same numbering,
the atomic rename of a local `.vN.partial` folder, and on the Hub one commit made with
`parent_commit=` (retried with the next number on a conflict) tagged `vN`.
"""

from __future__ import annotations

from pathlib import Path

from warriorcoder.config import HubConfig
from warriorcoder.errors import TrainingError
from warriorcoder.hub import HubStore, VersionRef

MODEL_REPO = "model"
"""The repo short name of checkpoints: `<namespace>/<prefix>-model`."""


def publish_checkpoint(folder: Path, hub: HubConfig) -> VersionRef:
    """Publish `folder` (with its README.md model card) as the next version of the model repo.

    Raises `TrainingError` when `folder` is no saved checkpoint, `HubError` when publishing
    fails (nothing is left behind)."""
    if not (folder / "config.json").is_file():
        raise TrainingError(f"{folder} is not a saved checkpoint (no config.json)")
    return HubStore.from_config(hub).publish_folder(MODEL_REPO, folder)
