"""The card of an `evals` version (`templates/evals_card.md`, `DatasetCardData`): the pass@k
table, the isolation the programs ran under, the model id and revision, the prompt mode and
the decoding. It names no local path, URL or token: the evaluation code passes text already
cleaned of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from warriorcoder.dataset_cards.card import VersionLike, size_category
from warriorcoder.lineage import LINEAGE_KEY, package_version

TEMPLATE = Path(__file__).parent / "templates" / "evals_card.md"
EVALS_TAGS = ("code", "evaluation", "warriorcoder", "warriorcoder-evals", "humaneval", "mbpp")


@dataclass(frozen=True)
class EvalsCardFacts:
    """What the evals card says, as plain data (the evaluation code fills it)."""

    model_id: str
    model_revision: str
    benchmarks: Sequence[str]
    overview: Sequence[str]
    """The summary's markdown lines (scores, outcomes, settings)."""
    scores: Mapping[str, Mapping[str, Any]]
    prompt_mode: str
    decoding: Mapping[str, Any]
    isolation: str
    num_rows: int
    fingerprint: str
    license: str = "apache-2.0"
    parent: Mapping[str, str] | None = None
    """The published `model` version evaluated (`repo_id`, `version`, `revision`), if any."""


def render_evals_card(facts: EvalsCardFacts, ref: VersionLike,
                      created_at: dt.datetime | None = None) -> str:
    """The README.md of one `evals` version."""
    created = (created_at or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    data = DatasetCardData(
        license=facts.license,
        language=["en"],
        pretty_name="WarriorCoder evaluations",
        task_categories=["text-generation"],
        tags=list(EVALS_TAGS),
        size_categories=[size_category(facts.num_rows)],
        configs=[{"config_name": "default",
                  "data_files": [{"split": "train", "path": ref.data_files}]}],
        **{LINEAGE_KEY: {
            "phase": "evaluate",
            "dataset": ref.dataset,
            "version": ref.version,
            "package_version": package_version(),
            "created_at": created,
            "parent": dict(facts.parent) if facts.parent else None,
            "counts": {"samples": facts.num_rows},
            "model_id": facts.model_id,
            "model_revision": facts.model_revision or None,
            "prompt_mode": facts.prompt_mode,
            "decoding": dict(facts.decoding),
            "isolation": facts.isolation,
            "scores": {name: dict(score) for name, score in facts.scores.items()},
            "fingerprint": facts.fingerprint,
        }},
    )
    if ref.is_local:
        load = f'load_dataset("<path to>/{ref.repo_id}/{ref.version}", split="train")'
    else:
        load = f'load_dataset("{ref.repo_id}", revision="{ref.version}", split="train")'
    card = DatasetCard.from_template(
        data,
        template_path=str(TEMPLATE),
        model_id=facts.model_id,
        model_revision=facts.model_revision,
        benchmarks=", ".join(facts.benchmarks),
        version=ref.version,
        package_version=package_version(),
        overview="\n".join(facts.overview),
        load=load,
    )
    return str(card)
