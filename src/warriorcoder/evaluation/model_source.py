"""Which published `model` version a local checkpoint folder is, so that the `evals` card of
that checkpoint can name it as its parent (and `warriorcoder report` can follow the lineage
from sft_final to the model to its evaluations).

    ref = published_model(store, Path("out/final"))   # -> VersionRef of <prefix>-model, or None

A checkpoint that `warriorcoder train` wrote carries its training fingerprint twice: in
`training_result.json` and in its model card's `warriorcoder` block; `train --push` publishes
it under that fingerprint (and records `<repo>@<version>` as `published`). The newest model
version of the store whose card holds the same fingerprint is the one; a folder without a
fingerprint (not trained by warriorcoder) has none.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from warriorcoder.errors import HubError
from warriorcoder.hub import MODEL, HubStore, VersionRef
from warriorcoder.lineage import lineage_or_none

logger = logging.getLogger(__name__)

RESULT_FILE = "training_result.json"
"""Written next to a checkpoint by `warriorcoder train` (`training.result.RESULT_FILE`)."""
CARD_FILE = "README.md"


def checkpoint_fingerprint(folder: Path) -> str | None:
    """The training fingerprint a checkpoint folder records (its `training_result.json`, else
    its model card's `warriorcoder` block), or None."""
    try:
        result: Any = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = None
    if isinstance(result, dict) and result.get("fingerprint"):
        return str(result["fingerprint"])
    try:
        card = (folder / CARD_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    block = lineage_or_none(card) or {}
    return str(block["fingerprint"]) if block.get("fingerprint") else None


def published_model(store: HubStore, folder: Path) -> VersionRef | None:
    """The newest `model` version of `store` whose card records `folder`'s training
    fingerprint, or None (not trained by warriorcoder, or never published there)."""
    wanted = checkpoint_fingerprint(Path(folder))
    if wanted is None:
        return None
    for ref in reversed(store.versions(MODEL)):
        try:
            block = lineage_or_none(store.read_card(MODEL, ref.version)) or {}
        except (OSError, LookupError, HubError) as error:
            logger.warning("evaluate: cannot read the card of %s: %s", ref.spec(), error)
            continue
        if block.get("fingerprint") == wanted:
            return ref
    return None


def parent_of(ref: VersionRef | None) -> dict[str, str] | None:
    """The `parent` entry of a card's `warriorcoder` block naming `ref` (as the model card's)."""
    if ref is None:
        return None
    return {"repo_id": ref.repo_id, "version": ref.version, "revision": ref.revision}
