"""Benchmark decontamination: flag instructions sharing a word n-gram with HumanEval or MBPP.

Words are lower-cased runs of letters, digits and underscores, so punctuation and layout do
not matter. The caller passes HumanEval's problems (prompt + canonical solution; loaded by
`warriorcoder.assets.humaneval_problems`, since this package reads no package data); MBPP
(problem `text` + `code`) is read from a local jsonl when one is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The word tokens n-grams are made of."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class BenchmarkText:
    """One benchmark problem's text to decontaminate against."""

    benchmark: str
    task_id: str
    text: str


@dataclass(frozen=True)
class Contamination:
    """A row's first n-gram found in a benchmark problem."""

    benchmark: str
    task_id: str
    ngram: str


def humaneval_texts(problems: Iterable[Mapping[str, Any]]) -> list[BenchmarkText]:
    """HumanEval problems (rows with `task_id`, `prompt`, `canonical_solution`) as texts."""
    return [
        BenchmarkText("HumanEval", p["task_id"], p["prompt"] + p["canonical_solution"])
        for p in problems
    ]


def mbpp_texts(path: str | Path) -> list[BenchmarkText]:
    """MBPP problems from a local jsonl with fields `task_id`, `text` and `code`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MBPP file {path} does not exist (filter.mbpp_path)")
    texts = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                problem = json.loads(line)
                texts.append(
                    BenchmarkText(
                        "MBPP", str(problem["task_id"]), problem["text"] + "\n" + problem["code"]
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(
                    f"{path}, line {number}: expected a JSON object with `task_id`, `text` and "
                    f"`code` ({error})"
                ) from None
    return texts


class NgramIndex:
    """Every word n-gram of the benchmark texts, mapped to the first problem that has it."""

    def __init__(self, texts: Iterable[BenchmarkText], n: int = 10) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n = n
        self._ngrams: dict[tuple[str, ...], tuple[str, str]] = {}
        for problem in texts:
            tokens = words(problem.text)
            for i in range(len(tokens) - n + 1):
                self._ngrams.setdefault(
                    tuple(tokens[i : i + n]), (problem.benchmark, problem.task_id)
                )
        self._first_words = {ngram[0] for ngram in self._ngrams}

    def __len__(self) -> int:
        return len(self._ngrams)

    def match(self, text: str) -> Contamination | None:
        """The first n-gram of `text` found in a benchmark, or None."""
        tokens = words(text)
        n = self.n
        for i in range(len(tokens) - n + 1):
            if tokens[i] not in self._first_words:
                continue
            ngram = tuple(tokens[i : i + n])
            hit = self._ngrams.get(ngram)
            if hit is not None:
                return Contamination(hit[0], hit[1], " ".join(ngram))
        return None


def benchmark_index(
    humaneval: Iterable[Mapping[str, Any]], n: int = 10, mbpp_path: str | Path | None = None
) -> NgramIndex:
    """The n-gram index of these HumanEval problems, plus MBPP when `mbpp_path` is given.

    Raises FileNotFoundError / ValueError for an MBPP file that is missing or malformed."""
    texts = humaneval_texts(humaneval)
    if mbpp_path is not None:
        texts += mbpp_texts(mbpp_path)
    return NgramIndex(texts, n)


def find_contamination(texts: Sequence[str], index: NgramIndex) -> list[Contamination | None]:
    """Per row, its contamination (benchmark, task id, matching n-gram) or None.

    Rows with fewer than `index.n` words cannot be flagged."""
    return [index.match(text) for text in texts]
