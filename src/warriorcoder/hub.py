"""Where datasets and checkpoints live: immutable, numbered versions, each with its card.

Every dataset (the six phase datasets, `evals`) and the `model` repo is one repo,
`<namespace>/<prefix>-<name>` (`HubConfig.repo_id`), and every dataset version holds:

    README.md                              the card; its YAML `configs:` maps split `train`
                                           to `data/train-*-<content hash>.parquet`
    data/train-00000-of-00001-<hash>.parquet   the rows (more shards above ~500 MB)
    figures/..., ...                       extra files a phase publishes (`files=`)

Local backend (`hub.backend: local`, the default): a version is a folder
`<root>/<namespace>/<prefix>-<dataset>/vN/` that loads as is with
`datasets.load_dataset(<that folder>)`. It is written inside a hidden `.vN.partial/`
folder, whose atomic `mkdir` reserves the number N among concurrent publishers, then
fsynced and renamed to `vN/`, so a version appears only when complete and is never
overwritten. A failed publish removes its partial folder; one killed outright leaves a
hidden `.vN.partial/` that is never listed and whose number is skipped.

Hub backend (`hub.backend: hf`): a version is one commit on `main` of the dataset repo
holding exactly that version's files (the previous version's other files are deleted in
the same commit), tagged `vN`. The commit is made with `parent_commit=` the head it was
planned on, so of two racing publishers one gets a conflict and retries with the next
number; its title ("warriorcoder: publish vN") lets that number be read back before the
tag exists. Downstream: `load_dataset("<repo_id>", revision="vN")`. The token is read from
the environment variable named by `HubConfig.token_env` (`hub_token`) and only ever sent as a
header. A checkpoint (`publish_folder`) is versioned the same way, in a model repo.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import datasets

from warriorcoder.config import HubConfig
from warriorcoder.errors import (
    HubError,
    PublishConflictError,
    SpecError,
    VersionNotFoundError,
    hub_error,
)
from warriorcoder.secrets import read_secret

CARD_FILE = "README.md"
DATA_DIR = "data"
SPLIT = "train"
MAX_SHARD_BYTES = 500 * 1024 * 1024
"""Rows are split into parquet shards of about this size (as `push_to_hub` does)."""

_VERSION = re.compile(r"v([1-9][0-9]*)")
_PUBLISH_TITLE = re.compile(r"warriorcoder: publish v([1-9][0-9]*)\b")
_PARTIAL = re.compile(r"\.v([1-9][0-9]*)\.partial")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

RenderCard = Callable[["VersionRef"], str]
Stage = Callable[[Path], "str | None"]
"""Writes a version's files (all but the card) into a folder; returns its data-files pattern."""

__all__ = ["HubError", "HubStore", "LocalHubStore", "HfHubStore", "VersionRef", "hub_token",
           "parse_spec", "version_number"]


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
        if self.is_local:
            where = self.location
            if relative_to is not None:
                where = Path(os.path.relpath(self.location, relative_to)).as_posix()
            call = f"load_dataset({where!r}, split={SPLIT!r})"
        else:
            call = f"load_dataset({self.repo_id!r}, revision={self.version!r}, split={SPLIT!r})"
        return f"from datasets import load_dataset\n\nds = {call}\n"


def parse_spec(spec: str) -> tuple[str, str]:
    """Split `<repo_id>@<version>` into its repo id and version."""
    """Split `<repo-or-folder>@vN`; raises `SpecError` (the version is always explicit)."""
    repo_id, sep, version = spec.rpartition("@")
    if not sep or not repo_id or not _VERSION.fullmatch(version):
        raise SpecError(
            f"{spec!r} is not `<repo_id>@vN` (for example my-org/warriorcoder-votes@v2); the "
            "version is always given explicitly"
        )
    return repo_id, version


def version_number(version: str) -> int:
    """The N of `vN`; raises `SpecError` for anything else."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise SpecError(f"{version!r} is not a version name; versions are v1, v2, ...")
    return int(match[1])


class HubStore(ABC):
    """Versioned repos: list, read and publish; see the module docstring."""

    def __init__(self, hub: HubConfig) -> None:
        self.hub = hub

    @staticmethod
    def from_config(hub: HubConfig) -> HubStore:
        """The store for `hub.backend`: `LocalHubStore` or `HfHubStore`."""
        if hub.backend == "local":
            return LocalHubStore(hub)
        return HfHubStore(hub)

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

        return self._publish(name, "dataset", stage, render_card)

    def publish_folder(
        self, name: str, folder: Path, render_card: RenderCard | None = None,
        repo_type: str = "model",
    ) -> VersionRef:
        """Publish every file of `folder` (a checkpoint) as the next version of `name`; its own
        README.md is the card unless `render_card` is given. Raises `HubError`."""
        folder = Path(folder)
        if not folder.is_dir():
            raise HubError(f"{folder} is not a folder to publish")

        def stage(target: Path) -> None:
            shutil.copytree(folder, target, dirs_exist_ok=True)
            return None

        return self._publish(name, repo_type, stage, render_card)

    max_shard_bytes: int = MAX_SHARD_BYTES

    @abstractmethod
    def _publish(self, name: str, repo_type: str, stage: Stage,
                 render_card: RenderCard | None) -> VersionRef:
        """Stage the files, add the card, and make them the next version atomically."""

    @abstractmethod
    def where(self) -> str:
        """Where this store publishes, for messages."""


def _check_extra_files(files: Mapping[str, bytes] | None) -> dict[str, bytes]:
    checked = {}
    for name, content in (files or {}).items():
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts or name != path.as_posix():
            raise HubError(f"extra file {name!r}: give a relative path like figures/difficulty.png")
        if name == CARD_FILE or path.parts[0] == DATA_DIR:
            raise HubError(f"extra file {name!r}: README.md and data/ are written by the store")
        if not isinstance(content, bytes):
            raise HubError(
                f"extra file {name!r}: content must be bytes, not {type(content).__name__}"
            )
        checked[name] = content
    return checked


def _check_card(card: object) -> str:
    if not isinstance(card, str) or not card.strip():
        raise HubError("render_card must return the README.md text (a non-empty str)")
    return card


def write_rows_and_files(
    folder: Path,
    dataset: datasets.Dataset,
    files: Mapping[str, bytes] | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> tuple[list[str], str]:
    """Write the parquet shards and extra files of a version into `folder`.

    Returns the repo paths written and the shards' pattern (see `VersionRef.data_files`)."""
    if len(dataset) == 0:
        # `load_dataset` cannot read a split with no rows, so such a version would be unusable.
        raise HubError(
            "refusing to publish a dataset with 0 rows; check the phase's input and filters"
        )
    extra = _check_extra_files(files)
    size = dataset.data.nbytes * len(dataset) / max(dataset.data.num_rows, 1)
    shards = min(len(dataset), max(1, math.ceil(size / max_shard_bytes)))
    (folder / DATA_DIR).mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    unnamed = []
    for index in range(shards):
        path = folder / DATA_DIR / f".shard-{index:05d}.parquet"
        shard = dataset.shard(shards, index, contiguous=True) if shards > 1 else dataset
        shard.to_parquet(str(path))
        digest.update(path.read_bytes())
        unnamed.append(path)
    token = digest.hexdigest()[:12]
    written = []
    for index, path in enumerate(unnamed):
        # push_to_hub's own naming, which `datasets` maps to the split without any card.
        name = f"{DATA_DIR}/{SPLIT}-{index:05d}-of-{shards:05d}-{token}.parquet"
        path.rename(folder / name)
        written.append(name)
    for name, content in extra.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
        written.append(name)
    return written, f"{DATA_DIR}/{SPLIT}-*-{token}.parquet"


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        _fsync(path)
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalHubStore(HubStore):
    """Versions as folders `<root>/<namespace>/<prefix>-<name>/vN/`."""

    def __init__(self, hub: HubConfig, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
        super().__init__(hub)
        self.root = Path(hub.root).absolute()
        self.max_shard_bytes = max_shard_bytes

    def where(self) -> str:
        return f"local folder {self.root}"

    def repo_dir(self, name: str) -> Path:
        return self.root / self.repo_id(name)

    def _ref(self, name: str, version: str) -> VersionRef:
        location = str(self.repo_dir(name) / version)
        return VersionRef(name, self.repo_id(name), version, version, location)

    def versions(self, name: str) -> list[VersionRef]:
        repo_dir = self.repo_dir(name)
        if not repo_dir.is_dir():
            return []
        numbers = sorted(
            int(match[1])
            for entry in repo_dir.iterdir()
            if entry.is_dir() and (match := _VERSION.fullmatch(entry.name))
        )
        return [self._ref(name, f"v{number}") for number in numbers]

    def load(self, name: str, version: str) -> datasets.Dataset:
        # Exactly what the card's snippet runs; content-hashed shard names keep the cache apart.
        return datasets.load_dataset(self.get(name, version).location, split=SPLIT)

    def read_card(self, name: str, version: str) -> str:
        return (Path(self.get(name, version).location) / CARD_FILE).read_text(encoding="utf-8")

    def _reserve(self, repo_dir: Path) -> tuple[int, Path]:
        """Atomically create `.vN.partial` for the next free N; it is ours alone."""
        while True:
            taken = [
                int(match[1])
                for entry in repo_dir.iterdir()
                if (match := _VERSION.fullmatch(entry.name) or _PARTIAL.fullmatch(entry.name))
            ]
            number = max(taken, default=0) + 1
            partial = repo_dir / f".v{number}.partial"
            try:
                partial.mkdir()
            except FileExistsError:
                continue
            # Someone may have renamed their .vN.partial to vN between our listing and mkdir.
            if (repo_dir / f"v{number}").exists():
                partial.rmdir()
                continue
            return number, partial

    def _publish(self, name: str, repo_type: str, stage: Stage,
                 render_card: RenderCard | None) -> VersionRef:
        repo_dir = self.repo_dir(name)
        repo_dir.mkdir(parents=True, exist_ok=True)
        number, partial = self._reserve(repo_dir)
        try:
            pattern = stage(partial)
            ref = self._ref(name, f"v{number}")
            if pattern is not None:
                ref = replace(ref, data_files=pattern)
            if render_card is not None:
                card = _check_card(render_card(ref))
                (partial / CARD_FILE).write_text(card, encoding="utf-8")
            _fsync_tree(partial)
            os.rename(partial, ref.location)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        _fsync(repo_dir)
        return ref


class HfHubStore(HubStore):
    """Versions as tagged commits of a repo on the Hugging Face Hub."""

    max_attempts = 8

    def __init__(self, hub: HubConfig, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
        import huggingface_hub

        super().__init__(hub)
        self.endpoint = (hub.endpoint or huggingface_hub.constants.ENDPOINT).rstrip("/")
        self.max_shard_bytes = max_shard_bytes
        self._token = hub_token(hub)
        self.api = huggingface_hub.HfApi(
            endpoint=self.endpoint, token=self._token, library_name="warriorcoder"
        )

    def where(self) -> str:
        return f"Hub {self.endpoint}"

    @staticmethod
    def _repo_type(name: str) -> str:
        return "model" if name == "model" else "dataset"

    def versions(self, name: str) -> list[VersionRef]:
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        repo_id = self.repo_id(name)
        try:
            refs = self.api.list_repo_refs(repo_id, repo_type=self._repo_type(name))
        except RepositoryNotFoundError:
            return []
        except HfHubHTTPError as error:
            raise hub_error(error, f"listing the versions of {repo_id}") from error
        tags = sorted(
            (int(match[1]), tag.target_commit)
            for tag in refs.tags
            if (match := _VERSION.fullmatch(tag.name))
        )
        return [VersionRef(name, repo_id, f"v{n}", sha, repo_id) for n, sha in tags]

    def load(self, name: str, version: str) -> datasets.Dataset:
        from huggingface_hub.errors import HfHubHTTPError

        ref = self.get(name, version)
        try:
            if datasets.config.HF_ENDPOINT.rstrip("/") == self.endpoint:
                return datasets.load_dataset(
                    ref.repo_id, revision=ref.revision, split=SPLIT, token=self._token
                )
            # `datasets` only talks to the endpoint it was imported with: load a local snapshot.
            folder = self.api.snapshot_download(
                ref.repo_id, repo_type="dataset", revision=ref.revision
            )
        except HfHubHTTPError as error:
            raise hub_error(error, f"loading {ref.spec()}") from error
        return datasets.load_dataset(folder, split=SPLIT)

    def read_card(self, name: str, version: str) -> str:
        from huggingface_hub.errors import HfHubHTTPError

        ref = self.get(name, version)
        try:
            path = self.api.hf_hub_download(
                ref.repo_id, CARD_FILE, repo_type=self._repo_type(name), revision=ref.revision
            )
        except HfHubHTTPError as error:
            raise hub_error(error, f"reading the card of {ref.spec()}") from error
        return Path(path).read_text(encoding="utf-8")

    def _plan(self, repo_id: str, repo_type: str) -> tuple[str | None, int]:
        """The head of `main` and the next version number after it."""
        refs = self.api.list_repo_refs(repo_id, repo_type=repo_type)
        head = next(
            (branch.target_commit for branch in refs.branches if branch.name == "main"), None
        )
        last = max((int(m[1]) for t in refs.tags if (m := _VERSION.fullmatch(t.name))), default=0)
        if head is not None:
            # A publish whose commit landed but whose tag is not made yet still owns its number.
            for commit in self.api.list_repo_commits(repo_id, repo_type=repo_type, revision=head):
                if match := _PUBLISH_TITLE.match(commit.title):
                    last = max(last, int(match[1]))
                    break
        return head, last + 1

    def _publish(self, name: str, repo_type: str, stage: Stage,
                 render_card: RenderCard | None) -> VersionRef:
        from huggingface_hub.errors import HfHubHTTPError

        repo_id = self.repo_id(name)
        try:
            self.api.create_repo(repo_id, repo_type=repo_type, private=self.hub.private,
                                 exist_ok=True)
            return self._commit_version(name, repo_id, repo_type, stage, render_card)
        except HfHubHTTPError as error:
            raise hub_error(error, f"publishing a version of {repo_id}") from error

    def _commit_version(self, name: str, repo_id: str, repo_type: str, stage: Stage,
                        render_card: RenderCard | None) -> VersionRef:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete
        from huggingface_hub.errors import HfHubHTTPError

        with tempfile.TemporaryDirectory(prefix="warriorcoder-publish-") as tmp:
            folder = Path(tmp)
            # Files once; the card names the version, which changes if a retry is needed.
            pattern = stage(folder)
            paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                           if p.is_file())
            if render_card is not None:
                paths = [p for p in paths if p != CARD_FILE]
            for attempt in range(1, self.max_attempts + 1):
                head, number = self._plan(repo_id, repo_type)
                ref = VersionRef(name, repo_id, f"v{number}", f"v{number}", repo_id,
                                 pattern or f"{DATA_DIR}/*.parquet")
                operations: list[CommitOperationAdd | CommitOperationDelete] = []
                if render_card is not None:
                    card = _check_card(render_card(ref))
                    operations.append(CommitOperationAdd(CARD_FILE, card.encode("utf-8")))
                operations += [CommitOperationAdd(p, str(folder / p)) for p in paths]
                kept = {CARD_FILE, *paths} if render_card is not None else set(paths)
                if head is not None:
                    old = self.api.list_repo_files(repo_id, repo_type=repo_type, revision=head)
                    stale = set(old) - kept - {".gitattributes"}
                    operations += [CommitOperationDelete(path) for path in sorted(stale)]
                title = f"warriorcoder: publish {ref.version} of {name}"
                try:
                    commit = self.api.create_commit(
                        repo_id,
                        operations,
                        commit_message=title,
                        repo_type=repo_type,
                        parent_commit=head,
                    )
                except HfHubHTTPError as error:
                    status = error.response.status_code if error.response is not None else None
                    if status in (409, 412) and attempt < self.max_attempts:
                        time.sleep(random.uniform(0.05, 0.3) * attempt)  # someone else published
                        continue
                    raise
                try:
                    self.api.create_tag(
                        repo_id, tag=ref.version, revision=commit.oid, repo_type=repo_type
                    )
                except HfHubHTTPError as error:
                    raise HubError(
                        f"{repo_id}: commit {commit.oid} holds {ref.version} but tagging it failed "
                        f"({hub_error(error, 'tagging')}); that number is skipped, publish again"
                    ) from error
                return replace(ref, revision=commit.oid)
        raise PublishConflictError(
            f"{repo_id}: gave up after {self.max_attempts} conflicting publishes; run again"
        )
