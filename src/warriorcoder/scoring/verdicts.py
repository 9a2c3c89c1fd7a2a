"""The pairwise judge prompt (paper Table 7) and strict parsing of its `[[A]]`/`[[B]]`/`[[Tie]]`.

The prompt text is the paper's, with one change: the PDF shows typographic apostrophes in
"A’s"/"B’s" (LaTeX typesetting of `'`); we use the ASCII apostrophe, as in the FastChat judge
prompts it derives from. The layout (one block per line) follows the table.
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["A", "B", "Tie"]
Winner = Literal["attacker", "defender", "tie", "invalid"]

JUDGE_PROMPT = (
    "This is a chatbot arena. You will be given assistant A's answer, and assistant B's answer. "
    "Please act as an impartial judge and evaluate the capability of two AI assistants. You "
    "should choose the assistant that follows instructions and answers questions better. Your "
    "evaluation should consider factors such as helpfulness, relevance, and accuracy. Begin your "
    "evaluation by comparing the responses of the two assistants and provide a short "
    "explanation. Avoid any position biases and ensure that the order in which the responses "
    "were presented does not influence your decision. DO NOT allow the LENGTH of the responses "
    "to influence your evaluation, choose the one that is straight-to-the-point instead of "
    "unnecessarily verbose. When the two candidates perform equally well, choose the SHORTER "
    "answer. Do not favor certain names of the assistants. Be as objective as possible. After "
    "providing your explanation concisely within 200 words, output your final verdict by "
    'strictly following this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B '
    'is better, and "[[Tie]]" for a tie. Finish your judgement within 300 words.\n'
    "\n"
    "[[User Question]]\n"
    "{instruction}\n"
    "[[The Start of Assistant A's Answer]]\n"
    "{answer_a}\n"
    "[[The End of Assistant A's Answer]]\n"
    "[[The Start of Assistant B's Answer]]\n"
    "{answer_b}\n"
    "[[The End of Assistant B's Answer]]"
)
"""Paper Table 7, with `{instruction}`, `{answer_a}` and `{answer_b}` placeholders."""


_PLACEHOLDER = re.compile(r"\{(instruction|answer_a|answer_b)\}")


def render_judge_prompt(instruction: str, answer_a: str, answer_b: str) -> str:
    """The judge prompt for one ordering; answers are inserted verbatim (braces are safe)."""
    # One regex pass, not str.format: answers are code (braces) and may contain placeholders.
    values = {"instruction": instruction, "answer_a": answer_a, "answer_b": answer_b}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], JUDGE_PROMPT)


def verdict_regex(max_explanation_chars: int = 1000) -> str:
    """A regex for TGI guided decoding: a short explanation, then one verdict on its own line.

    The explanation may not contain brackets, backticks or tildes, so nothing in it can read
    as a verdict, an echoed answer or code; every match parses with `parse_verdict`. It is
    bounded so that a reply of `max_explanation_chars + 8` tokens always reaches the verdict
    (every token is at least one character); give the request that many `max_new_tokens`.
    """
    if max_explanation_chars < 1:
        raise ValueError("max_explanation_chars must be at least 1")
    return rf"[^\[\]`~]{{1,{max_explanation_chars}}}\n\[\[(A|B|Tie)\]\]"


VERDICT_REGEX = verdict_regex()
"""Default guided-decoding regex: `grammar={"type": "regex", "value": VERDICT_REGEX}`."""

_TOKEN = re.compile(r"\[\[\s*(A|B|Tie)\s*\]\]", re.IGNORECASE)
_BLOCK_MARKER = re.compile(
    r"\[{1,2}\s*The\s+(Start|End)\s+of\s+Assistant\s+[AB]['’]s\s+Answer\s*\]{1,2}",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.MULTILINE)
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
_ONLY_TOKEN = re.compile(r"\s*(?:\*\*)?\s*\[\[\s*(?:A|B|Tie)\s*\]\]\s*(?:\*\*)?\s*", re.IGNORECASE)


def _after_echoed_answers(text: str) -> str | None:
    """Text after the last echoed answer block; None when a block is left open."""
    markers = list(_BLOCK_MARKER.finditer(text))
    if not markers:
        return text
    last = markers[-1]
    if last.group(1).lower() == "start":
        return None
    return text[last.end() :]


def _drop_code_and_quotes(text: str) -> str:
    """Remove fenced blocks, inline code and `>` quotes, unless one holds just a verdict."""
    out: list[str] = []
    pos = 0
    fences = list(_FENCE.finditer(text))
    i = 0
    while i < len(fences):
        opening = fences[i]
        out.append(text[pos : opening.start()])
        closing = next((f for f in fences[i + 1 :] if f.group(1) == opening.group(1)), None)
        body_start = text.find("\n", opening.end())
        body_start = len(text) if body_start < 0 else body_start
        if closing is None:
            body = text[body_start:]
            pos = len(text)
            i = len(fences)
        else:
            body = text[body_start : closing.start()]
            line_end = text.find("\n", closing.end())
            pos = len(text) if line_end < 0 else line_end
            i = fences.index(closing) + 1
        if _ONLY_TOKEN.fullmatch(body):
            out.append(body)
    out.append(text[pos:])
    kept = "".join(out)
    kept = _INLINE_CODE.sub(lambda m: m.group(1) if _ONLY_TOKEN.fullmatch(m.group(1)) else "", kept)
    lines = []
    for line in kept.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(">"):
            quoted = stripped.lstrip("> ")
            line = quoted if _ONLY_TOKEN.fullmatch(quoted) else ""
        lines.append(line)
    return "\n".join(lines)


def parse_verdict(judgement: str) -> Verdict | None:
    """The judge's final verdict, or None when there is none or it is ambiguous.

    Rules: only text after the last echoed `[[The End of Assistant X's Answer]]` counts (an
    unclosed echoed block means no verdict); fenced code, inline code and `>` quotes are ignored
    unless they hold nothing but a verdict; the verdict is the last `[[A]]`/`[[B]]`/`[[Tie]]`
    token left, and the line holding it must not name a different verdict.
    """
    tail = _after_echoed_answers(judgement)
    if tail is None:
        return None
    text = _drop_code_and_quotes(tail)
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return None
    last = tokens[-1]
    line_start = text.rfind("\n", 0, last.start()) + 1
    line_end = text.find("\n", last.end())
    line = text[line_start : len(text) if line_end < 0 else line_end]
    values = {_canonical(m.group(1)) for m in _TOKEN.finditer(line)}
    if len(values) != 1:
        return None
    return _canonical(last.group(1))


def _canonical(token: str) -> Verdict:
    upper = token.upper()
    if upper == "A":
        return "A"
    if upper == "B":
        return "B"
    return "Tie"


def map_verdict(verdict: Verdict | None, attacker_first: bool) -> Winner:
    """Map a positional verdict back to the battle's sides (`None` -> "invalid")."""
    if verdict is None:
        return "invalid"
    if verdict == "Tie":
        return "tie"
    if verdict not in ("A", "B"):
        raise ValueError(f"unknown verdict {verdict!r}; expected 'A', 'B', 'Tie' or None")
    first_won = verdict == "A"
    return "attacker" if first_won == attacker_first else "defender"
