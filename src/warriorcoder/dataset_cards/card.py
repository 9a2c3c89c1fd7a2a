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
from typing import TYPE_CHECKING, Any

import datasets
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from warriorcoder.config import ArenaConfig

if TYPE_CHECKING:
    from warriorcoder.builders.base import Phase

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"

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
    phase: Phase,
    ref: Any,
    parent: Any | None,
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
                  "data_files": [{"split": "train", "path": ref.data_files}]}],
        warriorcoder=lineage,
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
        load_snippet=ref.load_snippet(relative_to=config.base_dir),
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
