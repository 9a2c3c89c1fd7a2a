"""The files of one version, written into a staging folder: parquet shards named by their
content, extra files (figures, samples), a checkpoint's files; and the fsync that makes a
local version durable before it appears."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

import datasets

from warriorcoder.errors import HubError

CARD_FILE = "README.md"
DATA_DIR = "data"
SPLIT = "train"
MAX_SHARD_BYTES = 500 * 1024 * 1024
"""Rows are split into parquet shards of about this size (as `push_to_hub` does)."""


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


def check_card(card: object) -> str:
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




def copy_folder(source: Path, target: Path, exclude: Iterable[str] = ()) -> None:
    """Copy every file of `source` into `target`, but those whose relative path is in
    `exclude`; raises `HubError` when `source` is no folder."""
    if not source.is_dir():
        raise HubError(f"{source} is not a folder to publish")
    left_out = set(exclude)

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).relative_to(source)
        return {n for n in names if (here / n).as_posix() in left_out}

    shutil.copytree(source, target, dirs_exist_ok=True, ignore=ignore)


def fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fsync(path)
    fsync(folder)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


