"""From votes to battle outcomes: the tally of each battle under the judges' bias policy.

Votes come as columns (`battle_id`, `instruction_id`, `attacker`, `defender`, `judge`,
`order`, `verdict`, `winner`, as the `votes` dataset has them). A battle's outcome is its
majority of valid votes (a Tie vote gives each side half); one judge's votes on one battle in
both orders count as one verdict. A judge whose first-shown share departs from 0.5 (exact
binomial test, Bonferroni over the judges) is flagged, and its votes weighed by the policy
(`downweight`, `drop`, `reask`, `none`). A battle whose votes are all invalid is *unjudged*.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from warriorcoder.scoring.agreement import BiasTest, position_bias, position_bias_test
from warriorcoder.scoring.elo import Battle, battle_outcome, local_scores

ATTACKER_FIRST = "attacker_first"
DEFENDER_FIRST = "defender_first"
ORDERS = (ATTACKER_FIRST, DEFENDER_FIRST)
WINNERS = ("attacker", "defender", "tie")
BIAS_POLICIES = ("downweight", "reask", "drop", "none")


@dataclass(frozen=True)
class BattleTally:
    """One battle's votes: eq. 2 vote totals and the majority outcome."""

    battle_id: str
    instruction_id: str
    attacker: str
    defender: str
    votes: int
    valid: int
    t_attacker: float
    t_defender: float

    @property
    def judged(self) -> bool:
        """Whether at least one vote was valid."""
        return self.valid > 0

    @property
    def local(self) -> tuple[float, float]:
        """Eq. 2: (attacker, defender) vote shares; 0.5 each when unjudged."""
        return local_scores(self.t_attacker, self.t_defender)

    @property
    def outcome(self) -> float:
        """The attacker's result by majority: 1 win, 0.5 draw, 0 loss."""
        return battle_outcome(self.t_attacker, self.t_defender)

    def as_battle(self) -> Battle:
        return (self.attacker, self.defender, self.outcome)


def competitors(experts: Sequence[str], votes: Mapping[str, Sequence[Any]]) -> list[str]:
    """The arena's experts in config order, then any other competitor the votes name."""
    named = set(votes["attacker"]) | set(votes["defender"])
    return [*experts, *sorted(named - set(experts))]


_SIDE_SHARES = {"attacker": (1.0, 0.0), "defender": (0.0, 1.0), "tie": (0.5, 0.5)}


def combine_orders(winners: Sequence[str]) -> str:
    """One judge's verdict on one battle from its votes (one per order shown): the valid one,
    or for two valid ones the winner they agree on, else a tie (FastChat's rule)."""
    valid = [w for w in winners if w != "invalid"]
    for winner in winners:
        if winner not in _SIDE_SHARES and winner != "invalid":
            raise ValueError(f"unknown winner {winner!r}; expected 'attacker', 'defender', "
                             "'tie' or 'invalid'")
    if not valid:
        return "invalid"
    return valid[0] if all(w == valid[0] for w in valid) else "tie"


def tally_battles(votes: Mapping[str, Sequence[Any]],
                  weights: Mapping[str, float] | None = None) -> list[BattleTally]:
    """Battles (sorted by id) from vote columns `battle_id`, `instruction_id`, `attacker`,
    `defender`, `winner` (and `judge`): eq. 2 totals with a Tie vote half to each side.

    A judge's votes on one battle in both orders count as one verdict (`combine_orders`); a
    judge's verdict counts `weights[judge]` (default 1; 0 leaves it out, as if invalid)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, battle_id in enumerate(votes["battle_id"]):
        groups[battle_id].append(index)
    judges = votes.get("judge") or [str(i) for i in range(len(votes["battle_id"]))]
    weights = weights or {}
    tallies = []
    for battle_id in sorted(groups):
        indexes = groups[battle_id]
        first = indexes[0]
        by_judge: dict[str, list[str]] = defaultdict(list)
        for i in indexes:
            by_judge[judges[i]].append(votes["winner"][i])
        t_attacker = t_defender = 0.0
        valid = 0
        for judge, winners in by_judge.items():
            verdict = combine_orders(winners)
            weight = float(weights.get(judge, 1.0))
            if verdict == "invalid" or weight <= 0:
                continue
            valid += 1
            share_a, share_d = _SIDE_SHARES[verdict]
            t_attacker += weight * share_a
            t_defender += weight * share_d
        tallies.append(BattleTally(
            battle_id=battle_id,
            instruction_id=votes["instruction_id"][first],
            attacker=votes["attacker"][first],
            defender=votes["defender"][first],
            votes=len(indexes),
            valid=valid,
            t_attacker=t_attacker,
            t_defender=t_defender,
        ))
    return tallies


def judge_bias_tests(votes: Mapping[str, Sequence[Any]], confidence: float
                     ) -> dict[str, BiasTest]:
    """Per judge, the exact binomial test of its first-shown share (valid non-tie verdicts),
    Bonferroni-corrected over the judges: `confidence` holds for the arena, not for each judge
    (each test runs at 1 - (1 - confidence) / judges), so an honest panel is rarely flagged."""
    attacker_first = [o == ATTACKER_FIRST for o in votes["order"]]
    bias = position_bias(votes["judge"], votes["battle_id"], votes["verdict"], attacker_first)
    each = 1.0 - (1.0 - confidence) / max(len(bias), 1)
    return {judge: position_bias_test(round(0.0 if b.decided == 0 else b.first_share
                                            * b.decided), b.decided, each)
            for judge, b in bias.items()}


def bias_weights(tests: Mapping[str, BiasTest], policy: str) -> dict[str, float]:
    """Vote weight per judge under `judge.bias_policy`: flagged judges get their content
    share (`downweight`) or 0 (`drop`); every other judge, and every judge under `reask` and
    `none`, 1."""
    if policy not in BIAS_POLICIES:
        raise ValueError(f"unknown judge.bias_policy {policy!r}")
    weights = {}
    for judge, test in tests.items():
        weight = 1.0
        if test.flagged and policy == "downweight":
            weight = test.content_share
        elif test.flagged and policy == "drop":
            weight = 0.0
        weights[judge] = weight
    return weights


@dataclass(frozen=True)
class VoteCount:
    """Battles tallied under the bias policy, with the tests and weights behind it."""

    tallies: list[BattleTally]
    tests: dict[str, BiasTest]
    weights: dict[str, float]
    policy: str
    confidence: float

    @property
    def flagged(self) -> list[str]:
        return sorted(j for j, t in self.tests.items() if t.flagged)


def count_votes(votes: Mapping[str, Sequence[Any]], policy: str, confidence: float
                ) -> VoteCount:
    """Flag position-biased judges (at `confidence` for the panel) and tally the battles under
    the bias `policy` (`judge.bias_policy`); the one place votes become battle outcomes."""
    tests = judge_bias_tests(votes, confidence)
    weights = bias_weights(tests, policy)
    return VoteCount(tally_battles(votes, weights), tests, weights, policy, confidence)
