"""The outcome of an evaluation: one row per sample, pass@k per benchmark, and its files.

Files written to the report folder:

- `<dataset>_samples.jsonl`: EvalPlus's `samples.jsonl` (`task_id`, sanitised `solution`), so
  `evalplus.evaluate --samples` scores exactly what we scored; `<dataset>_samples.raw.jsonl`
  holds the unsanitised solutions (as EvalPlus's codegen writes them).
- `results.jsonl`: every sample's row (the `evals` dataset's columns) and `report.md`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from warriorcoder.evaluation.scoring import PASS, TIMEOUT, pass_at_k

Status = Literal["passed", "failed", "timed_out", "no_code", "generation_failed"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "timed_out", "no_code", "generation_failed")
STATUS_MEANING = {
    "passed": "every test passed (base and, where the set has them, plus tests)",
    "failed": "a test failed or the program raised (syntax errors included)",
    "timed_out": "still running at the time limit; killed",
    "no_code": "the reply holds no Python code (counted as a failure, never guessed)",
    "generation_failed": "the model call failed for good (rerun to retry only these)",
}
RESULTS_FILE = "results.jsonl"
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class SampleResult:
    """One sample of one problem: what the model was asked and said, what ran, how it ended."""

    task_id: str
    benchmark: str
    """The problem set: `humaneval` or `mbpp` (scores: the base and `+` benchmarks)."""
    sample: int
    prompt: str
    completion: str
    """The model's reply, verbatim (for `--samples`: the sample's solution or completion)."""
    solution: str
    """The code the tests ran (EvalPlus-sanitised for generated samples)."""
    status: Status
    base_status: str | None
    plus_status: str | None
    error: str | None = None
    duration_s: float | None = None
    finish_reason: str | None = None
    generated_tokens: int = 0

    @property
    def base_passed(self) -> bool:
        return self.base_status == PASS

    @property
    def plus_passed(self) -> bool:
        return self.base_status == PASS and self.plus_status == PASS


def overall_status(base: str | None, plus: str | None) -> Status:
    """passed when every run test set passed; timed_out when one timed out; else failed."""
    runs = [s for s in (base, plus) if s is not None]
    if runs and all(s == PASS for s in runs):
        return "passed"
    if TIMEOUT in runs:
        return "timed_out"
    return "failed"


@dataclass
class EvalReport:
    """pass@k of one target on each benchmark, with every sample's outcome."""

    target: str
    model_id: str
    model_revision: str
    rows: list[SampleResult]
    benchmarks: list[str]
    """The benchmark names scored, in order (`humaneval`, `humaneval+`, ...)."""
    sources: dict[str, str]
    """Per problem set, what its problems came from and which tests ran."""
    prompt_mode: str
    decoding: dict[str, Any]
    isolation: str
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    published: Any = None
    """The `evals` VersionRef once published."""

    def scores(self) -> dict[str, dict[str, float | int]]:
        """Per benchmark: pass@k for every k the sample count allows, problems and samples."""
        table: dict[str, dict[str, float | int]] = {}
        for name in self.benchmarks:
            dataset, plus = name.rstrip("+"), name.endswith("+")
            per_task: dict[str, list[bool]] = defaultdict(list)
            for row in self.rows:
                if row.benchmark == dataset:
                    per_task[row.task_id].append(row.plus_passed if plus else row.base_passed)
            counts = [(len(v), sum(v)) for v in per_task.values()]
            table[name] = {
                **pass_at_k(counts),
                "problems": len(counts),
                "samples": sum(n for n, _ in counts),
                "correct": sum(c for _, c in counts),
            }
        return table

    def counts(self) -> dict[str, int]:
        counted = Counter(row.status for row in self.rows)
        return {status: counted.get(status, 0) for status in STATUSES}

    @property
    def results_path(self) -> Path | None:
        return self.out_dir / RESULTS_FILE if self.out_dir else None

    @property
    def report_path(self) -> Path | None:
        return self.out_dir / REPORT_FILE if self.out_dir else None

    def summary(self) -> str:
        """One line per benchmark: pass@1 (and pass@k) with the counts."""
        lines = []
        for name, score in self.scores().items():
            ks = ", ".join(f"{k} {v:.4f}" for k, v in score.items() if k.startswith("pass@"))
            lines.append(
                f"{name}: {ks} ({score['correct']}/{score['samples']} samples passed, "
                f"{score['problems']} problems)"
            )
        return "\n".join(lines)

    def summary_table(self) -> str:
        """The markdown table of pass@k per benchmark (for cards)."""
        scores = self.scores()
        ks = sorted(
            {k for score in scores.values() for k in score if k.startswith("pass@")},
            key=lambda k: int(k.split("@")[1]),
        )
        lines = [
            "| benchmark | " + " | ".join(ks) + " | problems | samples |",
            "|---|" + "---:|" * (len(ks) + 2),
        ]
        for name, score in scores.items():
            cells = " | ".join(f"{score[k]:.4f}" if k in score else "n/a" for k in ks)
            lines.append(f"| {name} | {cells} | {score['problems']} | {score['samples']} |")
        return "\n".join(lines)

    def write(self, out_dir: Path) -> None:
        """Write the EvalPlus samples files, `results.jsonl` and `report.md` into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        by_dataset: dict[str, list[SampleResult]] = defaultdict(list)
        for row in self.rows:
            by_dataset[row.benchmark].append(row)
        for dataset, rows in by_dataset.items():
            with (out_dir / f"{dataset}_samples.jsonl").open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps({"task_id": row.task_id, "solution": row.solution}))
                    handle.write("\n")
            with (out_dir / f"{dataset}_samples.raw.jsonl").open("w", encoding="utf-8") as raw:
                for row in rows:
                    raw.write(json.dumps({"task_id": row.task_id, "solution": row.completion}))
                    raw.write("\n")
        with (out_dir / RESULTS_FILE).open("w", encoding="utf-8") as handle:
            for row in self.rows:
                handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
        (out_dir / REPORT_FILE).write_text(self.markdown(), encoding="utf-8")

    def overview(self, clean: Callable[[str], str] = lambda text: text,
                 note: Callable[[str], str] = lambda text: text) -> list[str]:
        """Markdown lines of the scores, how they were made and the outcome counts, shared by
        the report and the `evals` card; `clean` filters the free text (model id, sources,
        notes: a card redacts URLs and paths), `note` shortens each note."""
        decoding = ", ".join(f"{k}: {v}" for k, v in self.decoding.items())
        lines = [
            self.summary_table(),
            "",
            "| | |",
            "|---|---|",
            f"| model | `{clean(self.model_id)}` |",
            f"| revision | `{self.model_revision or 'unknown'}` |",
            f"| prompt mode | {self.prompt_mode} |",
            f"| decoding | {_cell(decoding)} |",
            f"| isolation | {_cell(self.isolation)} |",
        ]
        lines += [f"| problems: {k} | {_cell(clean(v))} |" for k, v in self.sources.items()]
        lines += ["", "## Outcomes", "", "| status | samples | meaning |", "|---|---:|---|"]
        lines += [f"| {s} | {n} | {STATUS_MEANING[s]} |" for s, n in self.counts().items()]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {_cell(clean(note(n)))}" for n in self.notes]
        return lines

    def markdown(self) -> str:
        """The report: scores, outcome counts, settings and the samples that did not pass."""
        lines = [f"# Evaluation of {_cell(self.target)}", "", *self.overview()]
        lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(str(v))} |" for k, v in self.settings.items()]
        failed = [row for row in self.rows if row.status != "passed"]
        lines += ["", "## Samples not passed", ""]
        if not failed:
            lines.append("None.")
        else:
            lines += ["| task | sample | status | base | plus | error (last line) |",
                      "|---|---:|---|---|---|---|"]
            for row in failed:
                last = (row.error or "").strip().splitlines()[-1:] or [""]
                lines.append(
                    f"| {row.task_id} | {row.sample} | {row.status} | {row.base_status} | "
                    f"{row.plus_status} | {_cell(last[0][:160])} |"
                )
        lines += ["", f"Every sample, its reply and the code that ran are in `{RESULTS_FILE}`.", ""]
        return "\n".join(lines)


def _describe(decoding: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in decoding.items())


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
