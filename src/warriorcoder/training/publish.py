"""Publish a trained checkpoint (weights, tokenizer, card) as the next `vN` of the model repo.

Local backend: `<hub.root>/<namespace>/<prefix>-model/<vN>/`, written to a temporary folder
and renamed into place, so a version is either complete or absent. Hub backend:
`HfApi.upload_folder` then `create_tag(vN)` on that commit.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from warriorcoder.config import HubConfig

_VERSION = re.compile(r"v(\d+)")


@dataclass(frozen=True)
class PublishedModel:
    repo_id: str
    version: str
    location: str
    """The version's local folder, or the Hub repo id."""

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.version}"


def model_repo_id(hub: HubConfig) -> str:
    return f"{hub.namespace}/{hub.prefix}-model"


def next_version(existing: set[str] | list[str]) -> str:
    numbers = [int(m.group(1)) for name in existing if (m := _VERSION.fullmatch(name))]
    return f"v{max(numbers, default=0) + 1}"


def publish_checkpoint(folder: Path, hub: HubConfig) -> PublishedModel:
    """Publish `folder` as the next version of `<namespace>/<prefix>-model`."""
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} is not a saved checkpoint (no config.json)")
    if hub.backend == "hf":
        return _publish_hf(folder, hub)
    return _publish_local(folder, hub)


def _publish_local(folder: Path, hub: HubConfig) -> PublishedModel:
    repo_id = model_repo_id(hub)
    repo_dir = Path(hub.root) / repo_id
    repo_dir.mkdir(parents=True, exist_ok=True)
    staging = repo_dir / f".tmp-{uuid.uuid4().hex}"
    shutil.copytree(folder, staging)
    try:
        while True:
            version = next_version({p.name for p in repo_dir.iterdir()})
            try:
                staging.rename(repo_dir / version)
                break
            except OSError:  # another publisher took this version number first
                if not (repo_dir / version).exists():
                    raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PublishedModel(repo_id, version, str(repo_dir / version))


def _publish_hf(folder: Path, hub: HubConfig) -> PublishedModel:
    api = HfApi(endpoint=hub.endpoint, token=os.environ.get(hub.token_env) or None)
    repo_id = model_repo_id(hub)
    api.create_repo(repo_id, repo_type="model", private=hub.private, exist_ok=True)
    version = next_version({tag.name for tag in api.list_repo_refs(repo_id).tags})
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="model",
        commit_message=f"warriorcoder checkpoint {version}",
    )
    api.create_tag(repo_id, tag=version, revision=commit.oid, repo_type="model")
    return PublishedModel(repo_id, version, repo_id)
