"""Publish a trained checkpoint (weights, tokenizer, card) as the next `vN` of the model repo.

The checkpoint goes through the hub store like every dataset version (`publish_artifact`):
the same numbering, the atomic rename of a local `.vN.partial` folder, and on the Hub one
commit made with `parent_commit=` (retried with the next number on a conflict) tagged `vN`.

`training_args.bin` is not published: it is a pickle of the Trainer's arguments holding the
training machine's absolute paths (`output_dir`, `logging_dir`), and loading a pickle from a
repo runs code. What it says that a reader needs (the hyperparameters) is in the model card
and `training_result.json`; the local checkpoint keeps it for `--resume`.
"""

from __future__ import annotations

from pathlib import Path

from warriorcoder.config import HubConfig
from warriorcoder.errors import TrainingError
from warriorcoder.hub import MODEL, Release, VersionRef, open_store

MODEL_REPO = MODEL
"""The repo short name of checkpoints: `<namespace>/<prefix>-model`."""
NOT_PUBLISHED = ("training_args.bin",)
"""Checkpoint files that stay local (see the module docstring)."""


def publish_checkpoint(folder: Path, hub: HubConfig, fingerprint: str | None = None, *,
                       force: bool = False) -> VersionRef:
    """Publish `folder` (with its README.md model card) as the next version of the model repo,
    unless the latest version's card records `fingerprint` (then that version, `reused`).

    Raises `TrainingError` when `folder` is no saved checkpoint, `HubError` when publishing
    fails (nothing is left behind)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise TrainingError(f"{folder} is not a saved checkpoint (no config.json)")
    store = open_store(hub)
    return store.publish_artifact(
        MODEL_REPO, fingerprint,
        lambda: Release(render_card=None, folder=folder, exclude=NOT_PUBLISHED), force=force,
    )
