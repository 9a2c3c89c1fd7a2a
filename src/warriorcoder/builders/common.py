"""Helpers the phase builders share: seeds derived from names, and retry-until-parsed calls."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import datasets

from warriorcoder.generation.types import GenerationResult, Request

if TYPE_CHECKING:
    from warriorcoder.generation import ExpertPool

Item = TypeVar("Item")
Value = TypeVar("Value")


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any JSON-able parts (same parts, same seed, on every machine)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def estimate_tokens(text: str) -> int:
    """A rough token count for cost plans made before any tokenizer is loaded (4 chars/token)."""
    return -(-len(text) // 4)


def mean_text_tokens(rows: datasets.Dataset, column: str, sample: int = 2000) -> int:
    """The mean `estimate_tokens` of a text column over (at most `sample` of) its rows."""
    if column not in rows.column_names or len(rows) == 0:
        return 0
    texts = rows.select(range(min(len(rows), sample)))[column]
    return round(sum(estimate_tokens(t or "") for t in texts) / len(texts))


def stable_id(*parts: object, length: int = 16) -> str:
    """A stable hex id from any JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[
        :length
    ]


@dataclass(frozen=True)
class Parsed(Generic[Value]):
    """The outcome of asking until the reply parses: the value (None = invalid) and its history."""

    value: Value | None
    result: GenerationResult
    attempts: int

    @property
    def valid(self) -> bool:
        return self.value is not None


def generate_parsed(
    pool: ExpertPool,
    items: Sequence[Item],
    make_request: Callable[[Item, int], Request],
    parse: Callable[[str], Value | None],
    *,
    max_attempts: int,
    desc: str,
) -> list[Parsed[Value]]:
    """Ask for each item; replies that do not parse are asked again (attempt n gets a new seed
    through `make_request(item, n)`) up to `max_attempts`, then recorded invalid, never guessed."""
    outcomes: list[Parsed[Value] | None] = [None] * len(items)
    pending = list(range(len(items)))
    for attempt in range(max_attempts):
        if not pending:
            break
        requests = [make_request(items[i], attempt) for i in pending]
        label = desc if attempt == 0 else f"{desc} (retry {attempt})"
        results = pool.run(requests, desc=label)
        still_pending = []
        for index, result in zip(pending, results, strict=True):
            value = parse(result.text) if result.ok else None
            outcomes[index] = Parsed(value=value, result=result, attempts=attempt + 1)
            if value is None:
                still_pending.append(index)
        pending = still_pending
    return [outcome for outcome in outcomes if outcome is not None]
