"""Asking until the reply parses: the retry loop of every call whose answer is a value (a
verdict, a difficulty score), shared by the phases that judge and by `check-judges`.

    outcomes = generate_parsed(pool, votes, request_of, parse_verdict, max_attempts=3,
                               desc="judge")

A reply that does not parse is asked again with a new request (attempt n: `make_request(item,
n)`, e.g. a new seed) up to `max_attempts`; one that never parses is recorded invalid (value
None) with its last reply, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from warriorcoder.generation.types import GenerationResult, Request

if TYPE_CHECKING:
    from warriorcoder.generation import ExpertPool

Item = TypeVar("Item")
Value = TypeVar("Value")


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
