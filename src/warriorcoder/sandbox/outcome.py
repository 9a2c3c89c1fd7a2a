"""The outcome of one (answer, test) pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

OutcomeStatus = Literal["pass", "fail", "error", "timeout", "no_code"]
OUTCOMES: tuple[OutcomeStatus, ...] = ("pass", "fail", "error", "timeout", "no_code")
OUTCOME_MEANING: dict[str, str] = {
    "pass": "the test ran to its end and every assert held (decided outside the sandbox)",
    "fail": "an assert did not hold (or the value was not plain data)",
    "error": "the answer's code or the test raised, or the sandboxed process ended early or "
    "tampered with its report channel",
    "timeout": "the test ran past its time limit",
    "no_code": "the answer holds no Python code; nothing ran",
}
DETAIL_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    """One of `OUTCOMES`, a short reason, and whether an assert was decided inside the sandbox
    (`weak`: its expected side was not a literal, so the answer's process computed it)."""

    status: OutcomeStatus
    detail: str = ""
    weak: bool = False

    def __post_init__(self) -> None:
        if self.status not in OUTCOMES:
            raise ValueError(f"outcome status {self.status!r} is not one of {OUTCOMES}")
        if len(self.detail) > DETAIL_CHARS:
            object.__setattr__(self, "detail", self.detail[: DETAIL_CHARS - 3] + "...")

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "weak": self.weak}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(data["status"], data.get("detail", ""), bool(data.get("weak", False)))
