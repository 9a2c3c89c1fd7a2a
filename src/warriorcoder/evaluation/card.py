"""The `evals` dataset: one row per sample, published as a version with its card.

    ref = publish_report(config, report)   # -> VersionRef of `<namespace>/<prefix>-evals`

The card itself is `dataset_cards.evals_card`; this module gives it the report's facts with
URLs and absolute paths taken out, and publishes through the hub's one path (an identical
report is not published twice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import datasets

from warriorcoder.dataset_cards import EvalsCardFacts, evaluation_section, render_evals_card
from warriorcoder.dataset_cards.arena_figures import (
    PASS_AT_1_FIGURE,
    pass_at_1_figure,
    pass_at_1_lines,
)
from warriorcoder.evaluation.model_source import parent_of, published_model
from warriorcoder.evaluation.report import EvalReport
from warriorcoder.hub.artifacts import EVALS
from warriorcoder.lineage import fingerprint, package_version

if TYPE_CHECKING:
    from warriorcoder.config import ArenaConfig
    from warriorcoder.hub import VersionRef

_FEATURES = datasets.Features(
    {
        "task_id": datasets.Value("string"),
        "benchmark": datasets.Value("string"),
        "sample": datasets.Value("int64"),
        "prompt": datasets.Value("string"),
        "completion": datasets.Value("string"),
        "solution": datasets.Value("string"),
        "status": datasets.Value("string"),
        "base_status": datasets.Value("string"),
        "plus_status": datasets.Value("string"),
        "error": datasets.Value("string"),
        "duration_s": datasets.Value("float64"),
        "finish_reason": datasets.Value("string"),
        "generated_tokens": datasets.Value("int64"),
    }
)
_URL_OR_PATH = re.compile(r"(https?://\S+|(?<![\w.])/(?:[\w.-]+/)+[\w.-]*)")


def _public(text: str) -> str:
    """Text with URLs and absolute paths replaced (cards name no host and no local folder)."""
    return _URL_OR_PATH.sub("<redacted>", text)


def rows_dataset(report: EvalReport) -> datasets.Dataset:
    """The per-sample outcomes as a `datasets.Dataset` with fixed features."""
    rows = [asdict(row) for row in report.rows]
    return datasets.Dataset.from_list(rows, features=_FEATURES)


def report_fingerprint(report: EvalReport, parent: Mapping[str, str] | None = None) -> str:
    """sha256 of what the rows say (the model, the prompts and decoding, every sample's
    completion and outcome; durations left out), and the published model version evaluated
    when known: equal reports publish one version."""
    rows = [{k: v for k, v in asdict(row).items() if k != "duration_s"} for row in report.rows]
    payload = {"model": [_public(report.model_id), report.model_revision],
               "prompt_mode": report.prompt_mode, "decoding": dict(report.decoding),
               "isolation": report.isolation, "rows": rows, "package": package_version()}
    if parent:  # left out without one: earlier reports keep their fingerprint
        payload["parent"] = dict(parent)
    return fingerprint(payload)


def card_facts(report: EvalReport, license: str = "apache-2.0",
               parent: Mapping[str, str] | None = None) -> EvalsCardFacts:
    """What the `evals` card says of `report`, with URLs and absolute paths taken out."""
    return EvalsCardFacts(
        model_id=_public(report.model_id),
        model_revision=report.model_revision,
        benchmarks=report.benchmarks,
        # the notes without their download hints (a card names no URL)
        overview=[*report.overview(clean=_public, note=lambda text: text.split(" (")[0]),
                  *pass_at_1_lines(report.scores())],
        scores=report.scores(),
        prompt_mode=report.prompt_mode,
        decoding=report.decoding,
        isolation=report.isolation,
        num_rows=len(report.rows),
        fingerprint=report_fingerprint(report, parent),
        license=license,
        parent=dict(parent) if parent else None,
    )


def render_card(report: EvalReport, ref: VersionRef, license: str = "apache-2.0",
                parent: Mapping[str, str] | None = None) -> str:
    """The README.md of one `evals` version (`parent`: the model version evaluated)."""
    return render_evals_card(card_facts(report, license, parent), ref)


def publish_report(config: ArenaConfig, report: EvalReport,
                   model_folder: Path | None = None) -> VersionRef:
    """Publish the report's rows as the next `evals` version (files: the samples and the
    report), unless the latest version holds this very report (then it is returned with
    `reused`). When `model_folder` (the checkpoint evaluated) was published as a `model`
    version of the config's hub, the card names that version as its parent. Raises `HubError`
    when the store refuses."""
    from warriorcoder.hub import Release, open_store

    store = open_store(config.hub)
    parent = (parent_of(published_model(store, model_folder))
              if model_folder is not None and Path(model_folder).is_dir() else None)

    def release() -> Release:
        files: dict[str, bytes] = {}
        if report.out_dir is not None:
            for path in sorted(report.out_dir.glob("*_samples*.jsonl")):
                files[f"samples/{path.name}"] = path.read_bytes()
        files[PASS_AT_1_FIGURE] = pass_at_1_figure(report.scores()).figure.png
        return Release(rows=rows_dataset(report), files=files,
                       render_card=lambda ref: render_card(report, ref, config.hub.license,
                                                           parent))

    return store.publish_artifact(EVALS, report_fingerprint(report, parent), release)


def model_card_section(report: EvalReport, ref: VersionRef | None = None) -> str:
    """The "Evaluation" section a checkpoint's model card gets: the table and how it was run."""
    return evaluation_section(prompt_mode=report.prompt_mode, decoding=report.decoding,
                              table=report.summary_table(), isolation=report.isolation,
                              evals_spec=ref.spec() if ref is not None else None)
