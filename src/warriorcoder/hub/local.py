"""The local backend (`hub.backend: local`, the default): versions as folders.

A version is a folder `<root>/<namespace>/<prefix>-<name>/vN/` that loads as is with
`datasets.load_dataset(<that folder>)`. It is written inside a hidden `.vN.partial/`
folder, whose atomic `mkdir` reserves the number N among concurrent publishers, then
fsynced and renamed to `vN/`, so a version appears only when complete and is never
overwritten. A failed publish removes its partial folder; one killed outright leaves a
hidden `.vN.partial/` that is never listed and whose number is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import datasets

from warriorcoder.config import HubConfig
from warriorcoder.hub.files import CARD_FILE, MAX_SHARD_BYTES, SPLIT, check_card, fsync, fsync_tree
from warriorcoder.hub.store import VERSION, HubStore, RenderCard, Stage, VersionRef

_PARTIAL = re.compile(r"\.v([1-9][0-9]*)\.partial")


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
            if entry.is_dir() and (match := VERSION.fullmatch(entry.name))
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
                if (match := VERSION.fullmatch(entry.name) or _PARTIAL.fullmatch(entry.name))
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
                card = check_card(render_card(ref))
                (partial / CARD_FILE).write_text(card, encoding="utf-8")
            fsync_tree(partial)
            os.rename(partial, ref.location)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        fsync(repo_dir)
        return ref
