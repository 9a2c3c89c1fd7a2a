"""The hub store's interface: versions of an artifact, how to read them, how one is published.

`LocalHubStore` (`local.py`) and `HfHubStore` (`hf.py`) implement it, and `open_store`
(`open.py`) picks the one a `HubConfig` names; the package docstring says what a version
holds. Every artifact is published through `publish_artifact`: the store first answers
whether a version with the same fingerprint exists (`version_with`), and only otherwise
builds and publishes the next one.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets

from warriorcoder.config import HubConfig
from warriorcoder.errors import HubError, SpecError, VersionNotFoundError
from warriorcoder.hub.artifacts import get_artifact
from warriorcoder.hub.files import (
    DATA_DIR,
    MAX_SHARD_BYTES,
    SPLIT,
    copy_folder,
    write_rows_and_files,
)
from warriorcoder.lineage import lineage_or_none
from warriorcoder.secrets import read_secret

logger = logging.getLogger(__name__)

VERSION = re.compile(r"v([1-9][0-9]*)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

RenderCard = Callable[["VersionRef"], str]
Stage = Callable[[Path], "str | None"]
"""Writes a version's files (all but the card) into a folder; returns its data-files pattern."""


def hub_token(hub: HubConfig) -> str | None:
    """The Hub token from the variable named by `hub.token_env` (None when unset: public repos
    read without one, and the Hub's 401 on a write is translated into what to do)."""
    return read_secret(hub.token_env, "hub.token_env", required=False)


@dataclass(frozen=True)
class VersionRef:
    """One published, immutable version of a dataset (or of the model repo)."""

    dataset: str
    """The repo's short name: a phase dataset (`votes`), `evals` or `model`."""
    repo_id: str
    version: str
    revision: str
    """Local: the version name; hub: the commit sha the tag points to (`vN` while publishing)."""
    location: str
    """Local: the absolute folder of the version; hub: the repo id."""
    data_files: str = field(default=f"{DATA_DIR}/*.parquet", compare=False)
    """The pattern of this version's parquet shards, for the card's `configs:`. Shard names
    carry a hash of their content: `datasets` caches a local folder under its name ("v1") and
    its `configs:` alone, so without the hash two repos' v1 folders would share one cache."""
    reused: bool = field(default=False, compare=False)
    """True when a run found this version already built from the same inputs (not republished)."""

    @property
    def is_local(self) -> bool:
        return Path(self.location).is_absolute()

    def spec(self) -> str:
        """`<repo_id>@<version>`, as `--from-card` and `train.dataset` take it."""
        return f"{self.repo_id}@{self.version}"

    def load_snippet(self, relative_to: Path | None = None) -> str:
        """Python code that loads exactly this version (a local folder relative to
        `relative_to`, e.g. the config's folder, when given)."""
        return load_snippet(self.repo_id, self.version,
                            self.location if self.is_local else None, relative_to)


def parse_spec(spec: str) -> tuple[str, str]:
    """Split `<repo-or-folder>@vN`; raises `SpecError` (the version is always explicit)."""
    repo_id, sep, version = spec.rpartition("@")
    if not sep or not repo_id or not VERSION.fullmatch(version):
        raise SpecError(
            f"{spec!r} is not `<repo_id>@vN` (for example my-org/warriorcoder-votes@v2); the "
            "version is always given explicitly"
        )
    return repo_id, version


def version_number(version: str) -> int:
    """The N of `vN`; raises `SpecError` for anything else."""
    match = VERSION.fullmatch(version)
    if match is None:
        raise SpecError(f"{version!r} is not a version name; versions are v1, v2, ...")
    return int(match[1])


class HubStore(ABC):
    """Versioned repos: list, read and publish; see the module docstring."""

    def __init__(self, hub: HubConfig) -> None:
        self.hub = hub

    def repo_id(self, name: str) -> str:
        """`<namespace>/<prefix>-<name>`; raises `HubError` for a name that is no repo name."""
        if not _NAME.fullmatch(name):
            raise HubError(f"{name!r} is not a dataset name (letters, digits, '_', '-', '.')")
        return self.hub.repo_id(name)

    @abstractmethod
    def versions(self, name: str) -> list[VersionRef]:
        """Published versions, oldest first."""

    def latest(self, name: str) -> VersionRef | None:
        """The newest version, or None when none is published."""
        found = self.versions(name)
        return found[-1] if found else None

    def get(self, name: str, version: str) -> VersionRef:
        """One version; raises `VersionNotFoundError` listing the known ones."""
        version_number(version)
        found = self.versions(name)
        for ref in found:
            if ref.version == version:
                return ref
        known = ", ".join(ref.version for ref in found) or "none published yet"
        raise VersionNotFoundError(
            f"{self.repo_id(name)} has no version {version} in the {self.where()}; "
            f"known versions: {known}"
        )

    @abstractmethod
    def load(self, name: str, version: str) -> datasets.Dataset:
        """The `train` split of that version."""

    @abstractmethod
    def read_card(self, name: str, version: str) -> str:
        """The README.md text of that version."""

    def lineage(self, ref: VersionRef | None) -> dict[str, Any] | None:
        """The `warriorcoder` block of a version's card (None: no version, no card, or a card
        warriorcoder did not write)."""
        if ref is None:
            return None
        try:
            return lineage_or_none(self.read_card(ref.dataset, ref.version))
        except (OSError, LookupError, HubError) as error:
            logger.warning("cannot read the card of %s (%s)", ref.spec(), error)
            return None

    def version_with(self, name: str, fingerprint: str) -> VersionRef | None:
        """The version of `name` built from the inputs `fingerprint` stands for, or None.

        Only the latest version is asked: an older one with the same fingerprint is not what a
        reader of "the latest" would get, so the next version is published instead."""
        latest = self.latest(name)
        lineage = self.lineage(latest) or {}
        return latest if latest is not None and lineage.get("fingerprint") == fingerprint else None

    def publish_artifact(self, name: str, fingerprint: str | None,
                         make: Callable[[], Release], *, force: bool = False) -> VersionRef:
        """The one way a version is published: the latest version of `name` when its card
        records `fingerprint` (returned with `reused`; `make` is not called), else `make()`
        published as the next version. `force` (or no fingerprint) always publishes."""
        if fingerprint is not None and not force:
            existing = self.version_with(name, fingerprint)
            if existing is not None:
                logger.info("%s: reusing %s (built from the same inputs; --force publishes a "
                            "new version anyway)", name, existing.spec())
                return replace(existing, reused=True)
        release = make()
        if release.rows is not None:
            return self.publish(name, release.rows, release.render_card, files=release.files)
        if release.folder is None:
            raise HubError(f"{name}: a release holds rows or a folder")
        return self.publish_folder(name, release.folder, release.render_card,
                                   exclude=release.exclude)

    def publish(
        self,
        name: str,
        dataset: datasets.Dataset,
        render_card: RenderCard,
        files: Mapping[str, bytes] | None = None,
    ) -> VersionRef:
        """Publish `dataset` as the next version of `name`; `render_card(ref)` gives its
        README.md. Raises `HubError` (nothing is left behind on failure)."""

        def stage(folder: Path) -> str:
            return write_rows_and_files(folder, dataset, files, self.max_shard_bytes)[1]

        return self._publish(name, self.repo_type(name), stage, render_card)

    def publish_folder(
        self, name: str, folder: Path, render_card: RenderCard | None = None,
        exclude: Iterable[str] = (),
    ) -> VersionRef:
        """Publish every file of `folder` (a checkpoint) but `exclude` as the next version of
        `name`; its own README.md is the card unless `render_card` is given. Raises `HubError`."""
        folder = Path(folder)
        if not folder.is_dir():
            raise HubError(f"{folder} is not a folder to publish")

        def stage(target: Path) -> None:
            copy_folder(folder, target, exclude)
            return None

        return self._publish(name, self.repo_type(name), stage, render_card)

    @staticmethod
    def repo_type(name: str) -> str:
        """`model` or `dataset`, as the artifact is declared (`hub.artifacts`)."""
        return get_artifact(name).repo_type

    max_shard_bytes: int = MAX_SHARD_BYTES

    @abstractmethod
    def _publish(self, name: str, repo_type: str, stage: Stage,
                 render_card: RenderCard | None) -> VersionRef:
        """Stage the files, add the card, and make them the next version atomically."""

    @abstractmethod
    def where(self) -> str:
        """Where this store publishes, for messages."""




@dataclass(frozen=True)
class Release:
    """What a new version holds: rows (a dataset version) or the files of a folder (a
    checkpoint), and the card rendered for the version it becomes."""

    render_card: RenderCard | None
    rows: datasets.Dataset | None = None
    files: Mapping[str, bytes] | None = None
    """Extra files beside the rows (figures, samples)."""
    folder: Path | None = None
    exclude: tuple[str, ...] = ()
    """Files of `folder` that are not published (relative paths)."""


def load_snippet(repo_id: str, version: str, local_folder: str | None = None,
                 relative_to: Path | None = None) -> str:
    """Python code that loads exactly one version: its local folder (relative to
    `relative_to` when given), else the Hub repo at that version."""
    if local_folder is not None:
        where = local_folder
        if relative_to is not None:
            where = Path(os.path.relpath(local_folder, relative_to)).as_posix()
        call = f"load_dataset({where!r}, split={SPLIT!r})"
    else:
        call = f"load_dataset({repo_id!r}, revision={version!r}, split={SPLIT!r})"
    return f"from datasets import load_dataset\n\nds = {call}\n"
