"""Difficulty rating of mined instructions (paper section 3.2): prompt, strict parsing, levels.

The four levels are the paper's, verbatim (its "AI’s" typographic apostrophe made ASCII). The
judge must end its reply with a line `Score: N`.
"""

from __future__ import annotations

import math
import numbers
import re

LEVELS: tuple[tuple[str, int, int], ...] = (
    ("Excellent", 9, 10),
    ("Good", 6, 8),
    ("Average", 3, 5),
    ("Poor", 1, 2),
)
"""(level, lowest score, highest score), best first."""

DIFFICULTY_PROMPT = (
    "Please act as an impartial judge and rate the following coding instruction, which a user "
    "gave to an AI assistant, on a scale of 1 to 10 according to these four levels:\n"
    "\n"
    "- Excellent (9-10): For instructions that are very clear, specific, and well-articulated. "
    "These instructions are particularly challenging and excellently designed to assess the "
    "AI's proficiency.\n"
    "- Good (6-8): For instructions that are clear and specific instructions. These are not "
    "overly difficult to answer and moderately assess the AI's capabilities.\n"
    "- Average (3-5): For instructions that are fairly clear and specific instructions. These "
    "instructions are easy to answer.\n"
    "- Poor (1-2): For instructions that are ambiguous or unclear.\n"
    "\n"
    "Do not answer the instruction. Give a short justification, then finish your reply with a "
    'final line of exactly this form: "Score: N", where N is an integer from 1 to 10.\n'
    "\n"
    "[[Instruction]]\n"
    "{instruction}\n"
    "[[End of Instruction]]"
)
"""The difficulty prompt, with an `{instruction}` placeholder."""


def render_difficulty_prompt(instruction: str) -> str:
    """The difficulty prompt for one instruction (inserted verbatim)."""
    head, tail = DIFFICULTY_PROMPT.split("{instruction}")
    return head + instruction + tail


def score_regex(max_explanation_chars: int = 400) -> str:
    """A regex for guided decoding: a one-line explanation, then `Score: N` on its own line.

    The explanation is one line without digits, so it cannot hold a second score; every match
    parses with `parse_difficulty`. Give the request at least `max_explanation_chars + 8`
    `max_new_tokens` so that it always reaches the score.
    """
    if max_explanation_chars < 1:
        raise ValueError("max_explanation_chars must be at least 1")
    return rf"[^\n0-9]{{1,{max_explanation_chars}}}\nScore: (10|[1-9])"


# A line holding only a score statement: "Score: 7", "**Score:** 7/10", "Final score = 7 (Good)."
_SCORE_LINE = re.compile(
    r"[\s*_#>-]*(?:final\s+)?(?:difficulty\s+)?score[\s*_]*[:=][\s*_]*(\d+(?:\.\d+)?)"
    r"(?:\s*/\s*10)?[\s*_]*(?:\(?\s*(?:excellent|good|average|poor)\s*\)?)?[\s*_.!]*",
    re.IGNORECASE,
)


def parse_difficulty(reply: str) -> int | None:
    """The explicit final score 1-10 of a difficulty reply, or None.

    The last non-empty line must be a score line (`Score: 7`, `Score: 7/10`, markdown bold and
    a level name allowed). None when there is no such line, the score is not an integer in
    1..10, or another score line in the reply gives a different score.
    """
    lines = [line for line in reply.splitlines() if line.strip()]
    if not lines:
        return None
    scores = []
    for line in lines:
        match = _SCORE_LINE.fullmatch(line.strip())
        if match:
            scores.append(match.group(1))
    last = _SCORE_LINE.fullmatch(lines[-1].strip())
    if last is None or len(set(scores)) != 1:
        return None
    text = last.group(1)
    if not text.isdigit():
        return None
    score = int(text)
    return score if 1 <= score <= 10 else None


def difficulty_level(score: float) -> str:
    """Level of a score or a mean of scores: the paper's bins, a mean taking the bin of its floor.

    So 9.0 and above is Excellent, [6, 9) Good, [3, 6) Average, [1, 3) Poor: a mean of 5.5 is
    Average, matching the keep rule `mean >= 6`.
    """
    if not isinstance(score, numbers.Real) or math.isnan(score) or not 1 <= score <= 10:
        raise ValueError(f"difficulty score must be a number in [1, 10], got {score!r}")
    for level, low, _ in LEVELS:
        if score >= low:
            return level
    raise AssertionError("unreachable: scores >= 1 always have a level")
