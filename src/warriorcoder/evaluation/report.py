"""The result of an evaluation: per-problem outcomes, pass@1, and the files they are written to."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["passed", "failed", "timed_out", "no_code", "generation_failed"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "timed_out", "no_code", "generation_failed")
_STATUS_MEANING = {
    "passed": "the program with the problem's tests exited with status 0",
    "failed": "a test failed or the program raised (syntax error included)",
    "timed_out": "still running at the time limit; killed",
    "no_code": "the reply holds no Python code (counted as a failure, never guessed)",
    "generation_failed": "the model call failed for good (rerun to retry only these)",
}

RESULTS_FILE = "humaneval_results.jsonl"
REPORT_FILE = "humaneval_report.md"


@dataclass(frozen=True)
class ProblemResult:
    """One HumanEval problem: the model's reply, the code run, and how it ended."""

    task_id: str
    entry_point: str
    status: Status
    completion: str
    """The model's reply, verbatim."""
    solution: str | None
    """The code that ran before the tests (None when nothing ran)."""
    error: str | None = None
    duration_s: float | None = None
    finish_reason: str | None = None
    generated_tokens: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class EvalReport:
    """HumanEval pass@1 (greedy) of one target, with every problem's outcome."""

    target: str
    model_id: str
    model_revision: str
    problems: list[ProblemResult]
    settings: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None

    @property
    def total(self) -> int:
        return len(self.problems)

    @property
    def passed(self) -> int:
        return sum(problem.passed for problem in self.problems)

    @property
    def pass_at_1(self) -> float:
        """Share of problems whose greedy answer passes every test (0.0 with no problems)."""
        return self.passed / self.total if self.total else 0.0

    @property
    def counts(self) -> dict[str, int]:
        """Problems per status, every status listed (zeros included)."""
        counted = Counter(problem.status for problem in self.problems)
        return {status: counted.get(status, 0) for status in STATUSES}

    @property
    def results_path(self) -> Path | None:
        return self.out_dir / RESULTS_FILE if self.out_dir else None

    @property
    def report_path(self) -> Path | None:
        return self.out_dir / REPORT_FILE if self.out_dir else None

    def summary(self) -> str:
        """One line: pass@1 and the counts."""
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n)
        return (
            f"HumanEval pass@1 of {self.target}: {self.pass_at_1:.4f} "
            f"({self.passed}/{self.total}; {counts})"
        )

    def write(self, out_dir: Path) -> None:
        """Write `humaneval_results.jsonl` (one row per problem) and `humaneval_report.md`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        with (out_dir / RESULTS_FILE).open("w", encoding="utf-8") as handle:
            for problem in self.problems:
                row = {**asdict(problem), "passed": problem.passed}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        (out_dir / REPORT_FILE).write_text(self.markdown(), encoding="utf-8")

    def markdown(self) -> str:
        lines = [
            f"# HumanEval pass@1: {_cell(self.target)}",
            "",
            "| | |",
            "|---|---|",
            f"| model | `{self.model_id}` |",
            f"| revision | `{self.model_revision or 'unknown'}` |",
            f"| problems | {self.total} |",
            f"| **pass@1** | **{self.pass_at_1:.4f}** ({self.passed}/{self.total}) |",
            "",
            "## Outcomes",
            "",
            "| status | problems | meaning |",
            "|---|---:|---|",
        ]
        lines += [
            f"| {status} | {n} | {_STATUS_MEANING[status]} |" for status, n in self.counts.items()
        ]
        lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
        lines += [f"| {key} | {_cell(str(value))} |" for key, value in self.settings.items()]
        failed = [problem for problem in self.problems if not problem.passed]
        lines += ["", "## Problems not passed", ""]
        if not failed:
            lines.append("None.")
        else:
            lines += ["| task | status | error (last line) |", "|---|---|---|"]
            for problem in failed:
                last = (problem.error or "").strip().splitlines()[-1:] or [""]
                lines.append(f"| {problem.task_id} | {problem.status} | {_cell(last[0][:160])} |")
        lines += ["", f"Every reply and the code that ran are in `{RESULTS_FILE}`.", ""]
        return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
