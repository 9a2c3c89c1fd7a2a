"""The Hub backend (`hub.backend: hf`): versions as tagged commits of a Hub repo.

A version is one commit on `main` of the repo holding exactly that version's files (the
previous version's other files are deleted in the same commit), tagged `vN`. The commit is
made with `parent_commit=` the head it was planned on, so of two racing publishers one gets a
conflict and retries with the next number; its title ("warriorcoder: publish vN") lets that
number be read back before the tag exists. Downstream: `load_dataset("<repo_id>",
revision="vN")`. The token is read from the environment variable named by `HubConfig.token_env`
(`hub_token`) and only ever sent as a header.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import datasets

from warriorcoder.config import HubConfig
from warriorcoder.errors import HubError, PublishConflictError, hub_error
from warriorcoder.hub.files import CARD_FILE, DATA_DIR, MAX_SHARD_BYTES, SPLIT, check_card
from warriorcoder.hub.store import VERSION, HubStore, RenderCard, Stage, VersionRef, hub_token

_PUBLISH_TITLE = re.compile(r"warriorcoder: publish v([1-9][0-9]*)\b")


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

    def versions(self, name: str) -> list[VersionRef]:
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        repo_id = self.repo_id(name)
        try:
            refs = self.api.list_repo_refs(repo_id, repo_type=self.repo_type(name))
        except RepositoryNotFoundError:
            return []
        except HfHubHTTPError as error:
            raise hub_error(error, f"listing the versions of {repo_id}") from error
        tags = sorted(
            (int(match[1]), tag.target_commit)
            for tag in refs.tags
            if (match := VERSION.fullmatch(tag.name))
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
                ref.repo_id, CARD_FILE, repo_type=self.repo_type(name), revision=ref.revision
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
        last = max((int(m[1]) for t in refs.tags if (m := VERSION.fullmatch(t.name))), default=0)
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
                    card = check_card(render_card(ref))
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
