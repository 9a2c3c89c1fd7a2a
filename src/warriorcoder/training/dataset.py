"""Load `sft_final` at a pinned version: `<repo-or-folder>@vN`, or this arena's latest, printed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset

from warriorcoder.config import ArenaConfig
from warriorcoder.errors import VersionNotFoundError
from warriorcoder.hub import VersionRef, hub_token, open_store, parse_spec
from warriorcoder.hub.store import load_snippet

SFT_DATASET = "sft_final"


@dataclass(frozen=True)
class DatasetSource:
    """Which dataset version a run trains on; recorded in the model card."""

    repo_id: str
    """The dataset repo, e.g. `my-org/warriorcoder-sft_final`."""
    version: str
    """The pinned version (a tag such as `v3`)."""
    location: str | None
    """The local folder of that version, or the Hub repo id (None: read back from a
    `training_result.json`, which names no local folder)."""
    revision: str | None = None
    """The exact commit of that version on the Hub, where known."""

    def to_dict(self) -> dict[str, Any]:
        """As published in `training_result.json`: a local folder is left out (it names the
        training machine); repo, version and revision say which rows were used."""
        data = asdict(self)
        if self.location and Path(self.location).is_absolute():
            data["location"] = None
        return data

    def load_snippet(self, relative_to: Path | None = None) -> str:
        """Python code that loads exactly this version (a local folder relative to
        `relative_to`, as a dataset card writes it)."""
        local = self.location if self.location and Path(self.location).is_absolute() else None
        return load_snippet(self.repo_id, self.version, local, relative_to)

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.version}"


def _source(ref: VersionRef) -> DatasetSource:
    return DatasetSource(ref.repo_id, ref.version, str(ref.location), ref.revision)


def load_pinned(spec: str, config: ArenaConfig) -> tuple[Dataset, DatasetSource]:
    """Load `<repo-or-folder>@vN` (train split).

    This arena's own sft_final repo id goes through the hub store (either backend); another
    local folder with version subfolders loads with `load_dataset(<folder>/<vN>)`; anything
    else is a Hub repo, loaded with `load_dataset(repo, revision=vN)`.
    """
    base, version = parse_spec(spec)
    if base == config.hub.repo_id(SFT_DATASET):
        store = open_store(config.hub)
        ref = store.get(SFT_DATASET, version)
        return store.load(SFT_DATASET, version), _source(ref)
    folder = Path(base).expanduser()
    if folder.is_dir():
        version_dir = folder / version
        if not version_dir.is_dir():
            found = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[:1] != ".")
            raise VersionNotFoundError(
                f"dataset {spec!r}: {folder} has no version folder {version!r}; "
                f"versions there: {found or 'none'}"
            )
        dataset = load_dataset(str(version_dir), split="train")
        folder = folder.resolve()
        source = DatasetSource(
            repo_id=f"{folder.parent.name}/{folder.name}",
            version=version,
            location=str(version_dir.resolve()),
        )
        return dataset, source
    dataset = load_dataset(base, revision=version, split="train", token=hub_token(config.hub))
    return dataset, DatasetSource(repo_id=base, version=version, location=base)


def load_latest_from_store(config: ArenaConfig) -> tuple[Dataset, DatasetSource]:
    """This arena's newest `sft_final` version, through the hub store."""
    store = open_store(config.hub)
    ref = store.latest(SFT_DATASET)
    if ref is None:
        raise VersionNotFoundError(
            f"no sft_final dataset in the hub store ({config.hub.repo_id(SFT_DATASET)}); run "
            "`warriorcoder select` first or pass --dataset <repo-or-folder>@<version>"
        )
    return store.load(SFT_DATASET, ref.version), _source(ref)


def load_sft_dataset(config: ArenaConfig, dataset: str | None) -> tuple[Dataset, DatasetSource]:
    """`dataset`, else `train.dataset`, else the store's newest `sft_final` (caller prints it)."""
    spec = dataset or config.train.dataset
    if spec:
        return load_pinned(spec, config)
    return load_latest_from_store(config)
