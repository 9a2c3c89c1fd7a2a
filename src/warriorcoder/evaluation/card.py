"""The `evals` dataset: one row per sample, published as a version with its card.

    ref = publish_report(config, report)   # -> VersionRef of `<namespace>/<prefix>-evals`

The card holds Hub-valid metadata (`DatasetCardData`), the pass@k table, the isolation the
programs ran under, the model id and revision, the prompt mode and the decoding; it names no
local path, URL or token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, replace
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

from warriorcoder.evaluation.report import EvalReport

if TYPE_CHECKING:
    from warriorcoder.config import ArenaConfig
    from warriorcoder.hub import VersionRef

EVALS = "evals"
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


def _package_version() -> str:
    try:
        return version("warriorcoder")
    except PackageNotFoundError:  # pragma: no cover - source tree
        return "0+unknown"


def _public(text: str) -> str:
    """Text with URLs and absolute paths replaced (cards name no host and no local folder)."""
    return _URL_OR_PATH.sub("<redacted>", text)


def rows_dataset(report: EvalReport) -> datasets.Dataset:
    """The per-sample outcomes as a `datasets.Dataset` with fixed features."""
    rows = [asdict(row) for row in report.rows]
    return datasets.Dataset.from_list(rows, features=_FEATURES)


def report_fingerprint(report: EvalReport) -> str:
    """sha256 of what the rows say (the model, the prompts and decoding, every sample's
    completion and outcome; durations left out): equal reports publish one version."""
    rows = [{k: v for k, v in asdict(row).items() if k != "duration_s"} for row in report.rows]
    payload = {"model": [_public(report.model_id), report.model_revision],
               "prompt_mode": report.prompt_mode, "decoding": dict(report.decoding),
               "isolation": report.isolation, "rows": rows, "package": _package_version()}
    canonical = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


def render_card(report: EvalReport, ref: VersionRef, license: str = "apache-2.0") -> str:
    """The README.md of one `evals` version."""
    scores = report.scores()
    data = DatasetCardData(
        license=license,
        language=["en"],
        pretty_name="WarriorCoder evaluations",
        task_categories=["text-generation"],
        tags=["code", "evaluation", "warriorcoder", "warriorcoder-evals", "humaneval", "mbpp"],
        size_categories=["n<1K" if len(report.rows) < 1000 else "1K<n<10K"],
        configs=[{"config_name": "default",
                  "data_files": [{"split": "train", "path": ref.data_files}]}],
        warriorcoder={
            "dataset": EVALS,
            "version": ref.version,
            "package_version": _package_version(),
            "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "model_id": _public(report.model_id),
            "model_revision": report.model_revision or None,
            "prompt_mode": report.prompt_mode,
            "decoding": {k: v for k, v in report.decoding.items()},
            "isolation": report.isolation,
            "scores": {name: {k: v for k, v in s.items()} for name, s in scores.items()},
            "fingerprint": report_fingerprint(report),
        },
    )
    if ref.is_local:
        load = f'load_dataset("<path to>/{ref.repo_id}/{ref.version}", split="train")'
    else:
        load = f'load_dataset("{ref.repo_id}", revision="{ref.version}", split="train")'
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# WarriorCoder evaluations: {_public(report.model_id)}",
        "",
        f"pass@k of `{_public(report.model_id)}` (revision `{report.model_revision or 'unknown'}`)"
        f" on {', '.join(report.benchmarks)}, scored as EvalPlus scores them; one row per "
        f"sample. Version **{ref.version}**, warriorcoder {_package_version()}.",
        "",
        "## Summary",
        "",
        # the notes without their download hints (a card names no URL)
        *report.overview(clean=_public, note=lambda text: text.split(" (")[0]),
    ]
    lines += [
        "",
        "## Columns",
        "",
        "`task_id`, `benchmark` (humaneval / mbpp), `sample`, `prompt` (what the model got), "
        "`completion` (its reply), `solution` (the sanitised code that ran), `status`, "
        "`base_status` / `plus_status` (EvalPlus: pass, fail, timeout), `error` (the end of "
        "the error), `duration_s`, `finish_reason`, `generated_tokens`.",
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f"ds = {load}",
        "```",
        "",
    ]
    return str(DatasetCard("\n".join(lines)))


def publish_report(config: ArenaConfig, report: EvalReport) -> VersionRef:
    """Publish the report's rows as the next `evals` version (files: the samples and the
    report), unless the latest version holds this very report (then it is returned with
    `reused`). Raises `HubError` when the store refuses."""
    from warriorcoder.dataset_cards import card_lineage
    from warriorcoder.hub import HubStore

    store = HubStore.from_config(config.hub)
    latest = store.latest(EVALS)
    if latest is not None:
        try:
            recorded = card_lineage(store.read_card(EVALS, latest.version)).get("fingerprint")
        except (ValueError, OSError):
            recorded = None
        if recorded == report_fingerprint(report):
            return replace(latest, reused=True)  # the same evaluation: not published twice
    files: dict[str, bytes] = {}
    if report.out_dir is not None:
        for path in sorted(report.out_dir.glob("*_samples*.jsonl")):
            files[f"samples/{path.name}"] = path.read_bytes()
    return store.publish(
        EVALS,
        rows_dataset(report),
        lambda ref: render_card(report, ref, license=config.hub.license),
        files=files,
    )


def model_card_section(report: EvalReport, ref: VersionRef | None = None) -> str:
    """The "Evaluation" section a checkpoint's model card gets: the table and how it was run."""
    decoding = ", ".join(f"{k}: {v}" for k, v in report.decoding.items())
    lines = [
        f"Scored as EvalPlus scores them (prompt mode: {report.prompt_mode}; {decoding}).",
        "",
        report.summary_table(),
        "",
        f"Generated programs ran under {report.isolation}.",
    ]
    if ref is not None:
        lines += ["", f"Every sample is in the `evals` dataset **{ref.repo_id}@{ref.version}**."]
    return "\n".join(lines)
