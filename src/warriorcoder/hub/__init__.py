"""Where datasets and checkpoints live: immutable, numbered versions, each with its card.

Every artifact (the six phase datasets, `model`, `evals`; `artifacts.py`) is one repo,
`<namespace>/<prefix>-<name>` (`HubConfig.repo_id`), and every dataset version holds:

    README.md                              the card; its YAML `configs:` maps split `train`
                                           to `data/train-*-<content hash>.parquet`
    data/train-00000-of-00001-<hash>.parquet   the rows (more shards above ~500 MB)
    figures/..., ...                       extra files a phase publishes (`files=`)

A checkpoint version holds the checkpoint's files and its model card. Two stores keep them:
a local folder (`local.py`, the default) and the Hugging Face Hub (`hf.py`); both answer the
interface in `store.py`, where `publish_artifact` is the one way any version is published;
`open_store(hub)` (`open.py`) gives the one `hub.backend` names.
`rebuild.py` turns a card back into the config that built it (`--from-card`).
"""

from warriorcoder.errors import HubError
from warriorcoder.hub.artifacts import ARTIFACTS, EVALS, MODEL, Artifact, get_artifact
from warriorcoder.hub.files import (
    CARD_FILE,
    DATA_DIR,
    MAX_SHARD_BYTES,
    SPLIT,
    write_rows_and_files,
)
from warriorcoder.hub.hf import HfHubStore
from warriorcoder.hub.local import LocalHubStore
from warriorcoder.hub.open import open_store
from warriorcoder.hub.store import (
    HubStore,
    Release,
    RenderCard,
    VersionRef,
    hub_token,
    parse_spec,
    version_number,
)

__all__ = [
    "ARTIFACTS",
    "CARD_FILE",
    "DATA_DIR",
    "EVALS",
    "MAX_SHARD_BYTES",
    "MODEL",
    "SPLIT",
    "Artifact",
    "HfHubStore",
    "HubError",
    "HubStore",
    "LocalHubStore",
    "Release",
    "RenderCard",
    "VersionRef",
    "get_artifact",
    "hub_token",
    "open_store",
    "parse_spec",
    "version_number",
    "write_rows_and_files",
]
