"""Does the arena produce code? Fenced blocks, parsing Python and length, per group of answers.

Pure functions over response strings and rows; the card sections that show them (per expert,
and for the chosen targets against the answers that lost) are in `dataset_cards.arena_sections`.
A fenced block is a Markdown code fence (three or more backticks or tildes); one cut off by
the length limit runs to the end of the answer. A block counts as Python when
its info string is `python`, `py`, `python3` or empty (this is a Python arena); an answer
parses when it has at least one Python block and every one of them passes `ast.parse`.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PYTHON_TAGS = frozenset({"", "python", "py", "python3"})

_FENCE = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$", re.M)


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its info string's first word (lower case), its text, and whether
    its closing fence is there (False: the answer ends inside it)."""

    language: str
    code: str
    closed: bool


def code_blocks(text: str) -> list[CodeBlock]:
    """The fenced code blocks of a Markdown answer, in order."""
    blocks = []
    position = 0
    while (opening := _FENCE.search(text, position)) is not None:
        fence = opening["fence"]
        language = (opening["info"].split() or [""])[0].lower()
        body_start = opening.end() + 1
        closing = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$",
                             re.M).search(text, body_start)
        if closing is None:
            blocks.append(CodeBlock(language, text[body_start:], closed=False))
            break
        blocks.append(CodeBlock(language, text[body_start:closing.start()], closed=True))
        position = closing.end()
    return blocks


def python_blocks(text: str) -> list[CodeBlock]:
    """The blocks taken as Python (see the module docstring)."""
    return [block for block in code_blocks(text) if block.language in PYTHON_TAGS]


def parses(code: str) -> bool:
    """Whether `ast.parse` accepts the code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for invalid escapes
            ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def python_parses(text: str) -> bool:
    """Whether the answer has Python block(s) and every one of them parses."""
    blocks = python_blocks(text)
    return bool(blocks) and all(parses(block.code) for block in blocks)


@dataclass(frozen=True)
class ResponseStats:
    """Counts over a group of answers."""

    responses: int
    fenced: int
    """Answers with at least one fenced code block."""
    python: int
    """Answers with at least one Python block."""
    parsing: int
    """Answers whose Python blocks all parse (and that have one)."""
    mean_chars: float

    def share(self, count: int) -> float:
        return count / self.responses if self.responses else 0.0


def response_stats(texts: Iterable[str]) -> ResponseStats:
    """The counts of a group of answers."""
    texts = list(texts)
    return ResponseStats(
        responses=len(texts),
        fenced=sum(bool(code_blocks(t)) for t in texts),
        python=sum(bool(python_blocks(t)) for t in texts),
        parsing=sum(python_parses(t) for t in texts),
        mean_chars=sum(len(t) for t in texts) / len(texts) if texts else 0.0,
    )


def battle_answers(rows: Sequence[Mapping[str, object]]) -> dict[str, list[str]]:
    """Each expert's answers in `battles` rows, one per (instruction, expert) even when the
    answer fights several battles."""
    answers: dict[str, dict[str, str]] = {}
    for row in rows:
        for side in ("attacker", "defender"):
            expert = str(row[side])
            answers.setdefault(expert, {}).setdefault(str(row["instruction_id"]),
                                                      str(row[f"response_{side}"]))
    return {expert: list(given.values()) for expert, given in sorted(answers.items())}


def target_groups(rows: Sequence[Mapping[str, object]]
                  ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """From `sft_final` rows: (chosen targets vs the candidates that lost; per expert, its
    answers as a candidate and those of them chosen)."""
    chosen: list[str] = []
    lost: list[str] = []
    per_expert: dict[str, list[str]] = {}
    per_expert_chosen: dict[str, list[str]] = {}
    for row in rows:
        chosen.append(str(row["response"]))
        per_expert_chosen.setdefault(str(row["winner"]), []).append(str(row["response"]))
        for candidate in row["candidates"]:  # type: ignore[union-attr]
            expert = str(candidate["expert"])
            per_expert.setdefault(expert, []).append(str(candidate["response"]))
            if expert != row["winner"]:
                lost.append(str(candidate["response"]))
    split = {"chosen targets": chosen, "losing candidates": lost}
    experts: dict[str, list[str]] = {}
    for expert in sorted(per_expert):
        experts[f"{expert} (all its candidates)"] = per_expert[expert]
        experts[f"{expert} (chosen)"] = per_expert_chosen.get(expert, [])
    return split, experts
