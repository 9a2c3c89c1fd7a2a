"""Dataset cards: YAML metadata the Hub accepts, a pinned how-to-load snippet and the lineage.

Each phase fills the statistics through one mechanism: it returns `CardSection`s (markdown,
optionally with `Figure`s, PNG files stored in the dataset repo and linked from the card).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import datasets
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from warriorcoder.config import ArenaConfig
from warriorcoder.lineage import LINEAGE_KEY, card_lineage, package_version

__all__ = ["CardContent", "CardSection", "Figure", "PhaseFacts", "VersionLike", "card_lineage",
           "markdown_table", "package_version", "portable_load_snippet", "render_dataset_card",
           "size_category"]

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"


class PhaseFacts(Protocol):
    """What a dataset card needs to know of the phase that wrote it (a `Phase` has it)."""

    name: str
    dataset: str
    summary: str
    task_categories: tuple[str, ...]


class VersionLike(Protocol):
    """A published version as cards name it (a hub `VersionRef` is one)."""

    dataset: str
    repo_id: str
    version: str
    revision: str
    data_files: str

    @property
    def is_local(self) -> bool: ...

    def load_snippet(self, relative_to: Path | None = None) -> str: ...


@dataclass(frozen=True)
class Figure:
    """A PNG stored in the dataset repo at `path` (e.g. `figures/difficulty.png`)."""

    path: str
    title: str
    png: bytes


@dataclass(frozen=True)
class CardSection:
    """A statistics section a phase adds to its card."""

    title: str
    markdown: str
    figures: tuple[Figure, ...] = ()


@dataclass
class CardContent:
    """What a phase knows about the version it writes, beyond the rows themselves."""

    counts: list[tuple[str, int]] = field(default_factory=list)
    """Row counts after each step, in order."""
    sections: list[CardSection] = field(default_factory=list)
    experts: list[Mapping[str, Any]] = field(default_factory=list)
    """One mapping per expert: name, model_id, model_revision (and revision_source)."""
    cost: dict[str, Any] = field(default_factory=dict)
    """Planned against actual calls and tokens (`planned`, `actual`), filled by the runner."""
    fingerprint: str | None = None
    """Hash of what determines the rows (parent revision, config sections, experts); a rerun
    with the same fingerprint reuses this version instead of publishing a copy."""

    configs: dict[str, datasets.Dataset] = field(default_factory=dict)
    """More configs of this version beside `default` (e.g. sft_final's `preference` pairs):
    name -> rows, published as `<name>/train-*.parquet` and listed in the card's `configs:`,
    so `load_dataset(repo, name, revision=...)` loads them."""

    def figure_files(self) -> dict[str, bytes]:
        return {f.path: f.png for s in self.sections for f in s.figures}

    def config_files(self) -> dict[str, bytes]:
        """The parquet file of each extra config, named with a hash of its bytes (as the
        default config's shards are, so `datasets`' cache tells versions apart)."""
        return {config_data_files(name, data)[0]: data for name, data in self._parquet().items()}

    def files(self) -> dict[str, bytes]:
        """Every file of the version besides README.md and data/: figures and extra configs."""
        return {**self.figure_files(), **self.config_files()}

    def _parquet(self) -> dict[str, bytes]:
        import io

        out = {}
        for name, rows in self.configs.items():
            buffer = io.BytesIO()
            rows.to_parquet(buffer)
            out[name] = buffer.getvalue()
        return out

    def config_entries(self) -> list[dict[str, Any]]:
        """The card's `configs:` entries of the extra configs."""
        return [{"config_name": name,
                 "data_files": [{"split": "train", "path": config_data_files(name, data)[1]}]}
                for name, data in self._parquet().items()]


def config_data_files(name: str, parquet: bytes) -> tuple[str, str]:
    """(the file, the card's pattern) of an extra config's parquet bytes."""
    import hashlib

    token = hashlib.sha256(parquet).hexdigest()[:12]
    return (f"{name}/train-00000-of-00001-{token}.parquet", f"{name}/train-*-{token}.parquet")


def size_category(num_rows: int) -> str:
    """The Hub's `size_categories` value for a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for bound, label in bounds:
        if num_rows < bound:
            return label
    return "n>1T" if num_rows >= 10**12 else "100M<n<1B"


def render_dataset_card(
    *,
    phase: PhaseFacts,
    ref: VersionLike,
    parent: VersionLike | None,
    config: ArenaConfig,
    dataset: datasets.Dataset,
    content: CardContent,
    created_at: dt.datetime | None = None,
) -> str:
    """The README.md text of one dataset version (`ref` and `parent` are hub `VersionRef`s).

    Safe to publish as it is: paths are relative to the config's folder, the experts' URLs are
    left out (unless `hub.record_endpoints`), and no secret is ever part of the config."""
    created = (created_at or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    config_data = config.to_card_dict()
    lineage = {
        "phase": phase.name,
        "dataset": phase.dataset,
        "version": ref.version,
        "package_version": package_version(),
        "created_at": created,
        "parent": None if parent is None else {
            "repo_id": parent.repo_id, "version": parent.version, "revision": parent.revision,
        },
        "counts": dict(content.counts),
        "experts": [dict(e) for e in content.experts],
        "cost": content.cost,
        "fingerprint": content.fingerprint,
        "config": config_data,
    }
    card_data = DatasetCardData(
        license=config.hub.license,
        language=["en"],
        task_categories=list(phase.task_categories),
        size_categories=[size_category(len(dataset))],
        tags=["code", "synthetic", "warriorcoder", f"warriorcoder-{phase.name}"],
        pretty_name=f"WarriorCoder {phase.dataset}",
        configs=[{"config_name": "default",
                  "data_files": [{"split": "train", "path": ref.data_files}]},
                 *content.config_entries()],
        **{LINEAGE_KEY: lineage},
    )
    card = DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=card_data.pretty_name,
        summary=phase.summary,
        phase=phase.name,
        repo_id=ref.repo_id,
        version=ref.version,
        package_version=package_version(),
        load_snippet=portable_load_snippet(ref, config),
        num_rows=len(dataset),
        columns=[(name, str(feature)) for name, feature in dataset.features.items()],
        counts=content.counts,
        sections=[_section_view(s) for s in [*content.sections, *_cost_sections(content.cost)]],
        parent=parent,
        created_at=created,
        experts=content.experts,
        config_yaml=yaml.safe_dump(config_data, sort_keys=False),
    )
    return str(card)


def portable_load_snippet(ref: Any, config: ArenaConfig) -> str:
    """The how-to-load code a card shows for `ref` (a `VersionLike` or a training source).

    A Hub version loads by repo and tag from anywhere. A local version loads by its path from
    the folder that holds the hub's root folder (after `make demo`, the project root:
    `hub/local/...`), with a comment saying so: a card holds no absolute path, and the
    config's folder is no place a user runs code from."""
    root = Path(config.hub.root).absolute()
    snippet = ref.load_snippet(relative_to=root.parent)
    if snippet == ref.load_snippet(relative_to=None):  # on the Hub: no path in it
        return snippet
    note = f"# a local version: run this from the folder that holds `{root.name}/`\n"
    return snippet.replace("\nds = ", f"\n{note}ds = ", 1)


def _cost_sections(cost: Mapping[str, Any]) -> list[CardSection]:
    """Planned against actual LLM calls and tokens, when the runner recorded them."""
    planned, actual = cost.get("planned"), cost.get("actual")
    if not planned or actual is None:
        return []
    rows = [[key.replace("_", " "), planned.get(key, "-"), actual.get(key, "-")]
            for key in ("calls", "prompt_tokens", "generated_tokens", "rows_out")]
    rows.append(["answered from the journal (not sent)", "-", actual.get("cached", 0)])
    rows.append(["failed calls", "-", actual.get("failures", 0)])
    seconds = actual.get("seconds")
    text = ("The plan is made before any call, from the config's limits and the parent's rows "
            "(generated tokens: the upper bound calls x max_new_tokens; prompt tokens: about 4 "
            "characters a token). Actual counts are what the experts reported for calls sent in "
            "this run; calls already in the request journal were not sent again."
            + (f" Phase time: {seconds:.1f} s." if seconds is not None else "")
            + "\n\n" + markdown_table(["", "planned", "actual"], rows))
    return [CardSection("Cost: planned and actual", text)]


def _section_view(section: CardSection) -> dict[str, Any]:
    return {"title": section.title, "markdown": section.markdown,
            "figures": [{"title": f.title, "path": f.path} for f in section.figures]}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
