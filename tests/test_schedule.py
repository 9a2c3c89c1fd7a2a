"""The defender schedule: fair turns, even pairs, determinism, and the best possible when the
data make perfect balance impossible (checked against brute force on small cases)."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from warriorcoder.scoring.schedule import schedule_defenders

EXPERTS = ["a", "b", "c", "d", "e"]


def _miners(counts: dict[str, int], seed: int = 0) -> list[str]:
    miners = [name for name, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(miners)
    return miners


def _check_structure(schedule, b: int) -> None:
    for attacker, defenders in zip(schedule.attackers, schedule.defenders, strict=True):
        assert len(defenders) == b
        assert len(set(defenders)) == b, "a defender meets the same instruction twice"
        assert attacker not in defenders, "an expert defends against its own instruction"


@pytest.mark.parametrize("b", [1, 2, 3, 4])
def test_equal_miners_give_equal_turns_and_equal_pairs(b: int) -> None:
    miners = _miners(dict.fromkeys(EXPERTS, 40))
    schedule = schedule_defenders(miners, EXPERTS, b, seed=7)
    _check_structure(schedule, b)
    assert schedule.attacks() == dict.fromkeys(EXPERTS, 40 * b)
    assert schedule.defences() == dict.fromkeys(EXPERTS, 40 * b)
    pairs = list(schedule.pairs().values())
    # 40 * b battles per attacker over 4 opponents: 10 * b each, exactly.
    assert set(pairs) == {10 * b}


def test_unequal_miners_still_balance_turns_and_spread_pairs() -> None:
    counts = {"a": 203, "b": 188, "c": 211, "d": 197, "e": 201}
    schedule = schedule_defenders(_miners(counts), EXPERTS, 1, seed=1)
    _check_structure(schedule, 1)
    assert schedule.balanced
    assert schedule.deviation() == dict.fromkeys(EXPERTS, 0)
    pairs = schedule.pairs()
    for attacker, n in counts.items():
        row = [pairs[(attacker, d)] for d in EXPERTS if d != attacker]
        # ideal ~ n / 4 per opponent; the column margins move it by a few battles at most
        assert max(row) - min(row) <= 10, row
        assert all(abs(v - n / 4) <= 8 for v in row), row


def test_schedule_is_a_function_of_the_seed() -> None:
    miners = _miners(dict.fromkeys(EXPERTS, 12))
    first = schedule_defenders(miners, EXPERTS, 2, seed=3)
    again = schedule_defenders(miners, EXPERTS, 2, seed=3)
    other = schedule_defenders(miners, EXPERTS, 2, seed=4)
    assert first.defenders == again.defenders
    assert other.defenders != first.defenders
    assert other.pairs() == first.pairs()  # the seed deals defenders, the counts stay fair


def test_one_dominant_miner_is_reported_and_the_rest_is_spread() -> None:
    counts = {"a": 60, "b": 10, "c": 10, "d": 10, "e": 10}
    schedule = schedule_defenders(_miners(counts), EXPERTS, 1, seed=0)
    _check_structure(schedule, 1)
    assert not schedule.balanced
    # `a` can defend only the 40 instructions others mined; the 20 defences it cannot take
    # are shared evenly by the others.
    assert schedule.defences() == {"a": 40, "b": 15, "c": 15, "d": 15, "e": 15}
    assert set(schedule.shortfalls()) == {"a"}
    assert "mined 60 of 100" in schedule.shortfalls()["a"]


def _best_deviation(miners: list[str], experts: list[str]) -> tuple[int, int]:
    """Brute force over every defender choice (b = 1): least (max excess + max shortfall),
    then least total deviation."""
    options = [[e for e in experts if e != m] for m in miners]
    best = None
    for choice in itertools.product(*options):
        defences = Counter(choice)
        attacks = Counter(miners)
        deviation = [defences[e] - attacks[e] for e in experts]
        key = (max(0, *deviation) + max(0, *(-d for d in deviation)),
               sum(abs(d) for d in deviation))
        best = key if best is None or key < best else best
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(12))
def test_defence_counts_are_the_best_possible_on_small_cases(seed: int) -> None:
    rng = random.Random(seed)
    experts = EXPERTS[: rng.choice([3, 4])]
    miners = [rng.choice(experts[: rng.choice([1, 2, len(experts)])])
              for _ in range(rng.randint(2, 7))]
    schedule = schedule_defenders(miners, experts, 1, seed=seed)
    _check_structure(schedule, 1)
    deviation = list(schedule.deviation().values())
    got = (max(0, *deviation) + max(0, *(-d for d in deviation)), sum(abs(d) for d in deviation))
    assert got == _best_deviation(miners, experts)


def test_an_expert_that_mined_nothing_neither_attacks_nor_defends() -> None:
    miners = _miners({"a": 9, "b": 9, "c": 9})
    schedule = schedule_defenders(miners, ["a", "b", "c", "d"], 1)
    assert schedule.attacks()["d"] == schedule.defences()["d"] == 0
    assert schedule.balanced


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"instruction 1: attacker 'zed'"):
        schedule_defenders(["a", "zed"], EXPERTS)
    with pytest.raises(ValueError, match="needs at least 5 experts"):
        schedule_defenders(["a"], ["a", "b", "c", "d"], battles_per_instruction=4)
