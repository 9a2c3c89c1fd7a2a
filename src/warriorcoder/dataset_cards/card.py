"""Dataset cards: YAML metadata the Hub accepts, a pinned how-to-load snippet and the lineage.

Each phase fills the statistics through one mechanism: it returns `CardSection`s (markdown,
optionally with `Figure`s, PNG files stored in the dataset repo and linked from the card).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version_of
from pathlib import Path
from typing import Any

import datasets
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from warriorcoder.config import PHASE_DATASETS, ArenaConfig

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"

PHASE_SUMMARIES: dict[str, str] = {
    "mine": "Instructions mined from each expert's own chat template (Magpie-style pre-query "
    "completion) under 9 sampling configs.",
    "filter": "Mined instructions after normalisation, exact and near deduplication, benchmark "
    "decontamination and judge-rated difficulty filtering (difficulty >= threshold).",
    "compress": "A diverse subset of the filtered instructions selected by KCenterGreedy over "
    "sentence embeddings.",
    "battle": "Pairwise battles: each instruction's miner (attacker) and a scheduled defender "
    "both answer it.",
    "judge": "Votes of the uninvolved experts on each battle, with the order of the answers "
    "shuffled per vote and the competitors' names withheld.",
    "select": "SFT targets: the best response per instruction by local vote share combined with "
    "Elo expectation (alpha-weighted), as chat `messages`.",
}

TASK_CATEGORIES: dict[str, list[str]] = {
    "mine": ["text-generation"],
    "filter": ["text-generation"],
    "compress": ["text-generation"],
    "battle": ["text-generation"],
    "judge": ["text-classification"],
    "select": ["text-generation"],
}


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
    """One mapping per expert: name, model_id, model_revision."""

    def figure_files(self) -> dict[str, bytes]:
        return {f.path: f.png for s in self.sections for f in s.figures}


def package_version() -> str:
    try:
        return package_version_of("warriorcoder")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


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
    phase: str,
    ref: Any,
    parent: Any | None,
    config: ArenaConfig,
    dataset: datasets.Dataset,
    content: CardContent,
    created_at: dt.datetime | None = None,
) -> str:
    """The README.md text of one dataset version (`ref` and `parent` are hub `VersionRef`s)."""
    created = (created_at or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    config_data = config.to_yaml_dict()
    lineage = {
        "phase": phase,
        "dataset": PHASE_DATASETS[phase],
        "version": ref.version,
        "package_version": package_version(),
        "created_at": created,
        "parent": None if parent is None else {
            "repo_id": parent.repo_id, "version": parent.version, "revision": parent.revision,
        },
        "counts": dict(content.counts),
        "experts": [dict(e) for e in content.experts],
        "config": config_data,
    }
    card_data = DatasetCardData(
        license=config.hub.license,
        language=["en"],
        task_categories=TASK_CATEGORIES[phase],
        size_categories=[size_category(len(dataset))],
        tags=["code", "synthetic", "warriorcoder", f"warriorcoder-{phase}"],
        pretty_name=f"WarriorCoder {PHASE_DATASETS[phase]}",
        configs=[{"config_name": "default",
                  "data_files": [{"split": "train", "path": ref.data_files}]}],
        warriorcoder=lineage,
    )
    card = DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=card_data.pretty_name,
        summary=PHASE_SUMMARIES[phase],
        phase=phase,
        repo_id=ref.repo_id,
        version=ref.version,
        package_version=package_version(),
        load_snippet=ref.load_snippet(),
        num_rows=len(dataset),
        columns=[(name, str(feature)) for name, feature in dataset.features.items()],
        counts=content.counts,
        sections=[_section_view(s) for s in content.sections],
        parent=parent,
        created_at=created,
        experts=content.experts,
        config_yaml=yaml.safe_dump(config_data, sort_keys=False),
    )
    return str(card)


def _section_view(section: CardSection) -> dict[str, Any]:
    return {"title": section.title, "markdown": section.markdown,
            "figures": [{"title": f.title, "path": f.path} for f in section.figures]}


def card_lineage(card_text: str) -> dict[str, Any]:
    """The `warriorcoder` metadata block (phase, parent, config, counts) of a card."""
    card = DatasetCard(card_text)
    lineage = card.data.to_dict().get("warriorcoder")
    if not isinstance(lineage, dict):
        raise ValueError("this card has no `warriorcoder` metadata (not written by warriorcoder)")
    return lineage


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
