"""Standings: from the votes of an arena to its ratings, its SFT targets and how settled they are.

    result = standings(votes, ["alpha", "beta", "gamma"], StandingsOptions(alpha=0.7),
                       cut={"b1": (False, True)})
    result.ratings.chosen          # expert -> the global rating that feeds eq. 5
    result.targets                 # per instruction: the winner and every candidate's eq. 5 parts
    result.stability               # per instruction: share of alternative ratings that agree

`standings` is the one function the `judge` phase (the votes card's preview) and the `select`
phase (the `sft_final` rows) call; it takes vote columns and plain options, so any source of
verdicts with those columns can be ranked the same way. Its steps, each a function here:

1. `count_votes` (`scoring.tally`): battle outcomes under the judges' bias policy;
2. `compute_ratings`: online Elo in a seeded order, its mean over random orders, and
   Bradley-Terry, over the judged battles, with bootstrap intervals (eq. 3-4);
3. `choose_targets`: eq. 5 per instruction (alpha x Elo expectation + (1 - alpha) x local
   vote share), the best complete answer where the top one was cut by the length limit;
4. `rating_draws` and `target_agreement`: each target chosen again under alternative ratings.

A battle whose votes are all invalid is unjudged: it is left out of every rating; its local
scores are the undecided 0.5 / 0.5, so on its instruction eq. 5 falls back to the Elo
expectation alone. Every random draw is seeded from `StandingsOptions.seed` by name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from warriorcoder.scoring.elo import (
    Battle,
    CandidateScore,
    InstructionBattle,
    bootstrap_elo_samples,
    bootstrap_samples,
    bradley_terry,
    final_scores,
    online_elo,
    online_elo_runs,
    percentile_intervals,
    permutation_elo,
    select_best,
)
from warriorcoder.scoring.execution_verdicts import record_scores, split_kinds, with_execution
from warriorcoder.scoring.seeds import derive_seed
from warriorcoder.scoring.tally import BattleTally, VoteCount, competitors, count_votes

METHODS = {"online": "online Elo", "permutation": "permutation Elo",
           "bradley_terry": "Bradley-Terry"}
BOOTSTRAP_PERMUTATIONS = 10
"""Orders averaged per bootstrap resample of the permutation Elo (its cost grows with them)."""


@dataclass(frozen=True)
class StandingsOptions:
    """How votes become standings, as plain values (named as the config's `judge.bias_*` and
    `select` settings that a phase passes; the defaults are the config's)."""

    bias_policy: str = "downweight"
    """What a position-biased judge's votes weigh: `downweight`, `reask`, `drop` or `none`."""
    bias_confidence: float = 0.95
    """Confidence of the panel's position-bias test (Bonferroni over the judges)."""
    rating: str = "online"
    """The rating that feeds eq. 5: `online`, `permutation` or `bradley_terry`."""
    k: float = 40.0
    initial_rating: float = 1000.0
    elo_permutations: int = 100
    bootstrap_rounds: int = 200
    alpha: float = 0.7
    """Eq. 5's weight of the Elo expectation against the local vote share."""
    allow_truncated_targets: bool = False
    """False: an answer cut by the length limit is a target only when every answer was cut."""
    stability_orders: int = 100
    seed: int = 0
    execution: str = "off"
    """How execution verdicts (votes rows of kind `execution`) count: `off`, `vote`, `first`,
    `record` (`scoring.execution_verdicts`; `judge.execution.mode`)."""


@dataclass(frozen=True)
class Ratings:
    """Global scores of every expert by the three methods, with bootstrap 95% intervals."""

    values: dict[str, dict[str, float]]
    """method -> expert -> rating."""
    intervals: dict[str, dict[str, tuple[float, float]]]
    method: str
    """The method that feeds eq. 5 (`select.rating`)."""
    order_seed: int
    judged_battles: int
    samples: list[dict[str, float]] = field(default_factory=list)
    """The chosen method's bootstrap resamples (behind its intervals)."""

    @property
    def chosen(self) -> dict[str, float]:
        return self.values[self.method]


def compute_ratings(
    tallies: Sequence[BattleTally], experts: Sequence[str], options: StandingsOptions
) -> Ratings:
    """Online Elo in a seeded order, permutation-averaged Elo and Bradley-Terry over the judged
    battles (sorted by id); experts without a judged battle keep the initial rating."""
    battles = [t.as_battle() for t in tallies if t.judged]
    order_seed = derive_seed("elo-order", options.seed)
    k, initial = options.k, options.initial_rating
    permutations = options.elo_permutations

    permutation_seed = derive_seed("elo-permutations", options.seed)

    def bt(sample: Sequence[Battle]) -> Mapping[str, float]:
        return bradley_terry(sample, initial=initial)

    values: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    samples: list[dict[str, float]] = []
    if battles:
        order = np.random.default_rng(order_seed).permutation(len(battles)).tolist()
        values["online"] = dict(online_elo(battles, k=k, initial=initial, order=order))
        values["permutation"] = dict(permutation_elo(
            battles, k=k, initial=initial, permutations=permutations, seed=permutation_seed))
        values["bradley_terry"] = dict(bt(battles))
        for method in METHODS:
            seed = derive_seed("bootstrap", options.seed, method)
            if method == "bradley_terry":
                resampled = bootstrap_samples(battles, bt, rounds=options.bootstrap_rounds,
                                              seed=seed)
            else:  # online Elo (in draw order) or its mean over orders, all resamples at once
                resampled = bootstrap_elo_samples(
                    battles, options.bootstrap_rounds, seed, k=k, initial=initial,
                    permutations=None if method == "online" else
                    min(permutations, BOOTSTRAP_PERMUTATIONS),
                    permutation_seed=permutation_seed)
            intervals[method] = percentile_intervals(resampled)
            if method == options.rating:
                samples = resampled
    nan = (math.nan, math.nan)
    for method in METHODS:
        values[method] = {e: values.get(method, {}).get(e, initial) for e in experts}
        intervals[method] = {e: intervals.get(method, {}).get(e, nan) for e in experts}
    return Ratings(values, intervals, options.rating, order_seed, len(battles), samples)


@dataclass(frozen=True)
class Target:
    """The chosen response of one instruction and every candidate's eq. 5 parts."""

    instruction_id: str
    winner: str
    scores: dict[str, CandidateScore]
    battles: int
    judged_battles: int
    skipped_truncated: bool = False
    """The top-scored candidate's answer was cut by the length limit; `winner` is the best
    complete one (`select.allow_truncated_targets: false`)."""
    all_truncated: bool = False
    """Every candidate's answer was cut (`winner` is then the top-scored one)."""

    @property
    def judged(self) -> bool:
        return self.judged_battles > 0


Truncation = Mapping[tuple[str, str], bool]
"""(instruction_id, expert) -> whether that expert's answer was cut by the length limit."""


def truncation_of(tallies: Sequence[BattleTally],
                  cut: Mapping[str, tuple[bool, bool]]) -> dict[tuple[str, str], bool]:
    """(instruction_id, expert) -> truncated, from battle_id -> (attacker's answer cut,
    defender's answer cut); battles missing from `cut` count as complete."""
    result: dict[tuple[str, str], bool] = {}
    for t in tallies:
        cut_a, cut_d = cut.get(t.battle_id, (False, False))
        for key, flag in (((t.instruction_id, t.attacker), cut_a),
                          ((t.instruction_id, t.defender), cut_d)):
            result[key] = result.get(key, False) or bool(flag)
    return result


Records = Mapping[tuple[str, str], float]
"""(instruction_id, expert) -> the answer's test record (`judge.execution.mode: record`)."""


def best_recorded(scores: Mapping[str, CandidateScore], records: Records | None,
                  instruction_id: str) -> dict[str, CandidateScore]:
    """The candidates with the instruction's best test record (all of them without records;
    an answer without one counts 0)."""
    if records is None or not scores:
        return dict(scores)
    top = max(records.get((instruction_id, e), 0.0) for e in scores)
    return {e: v for e, v in scores.items() if records.get((instruction_id, e), 0.0) == top}


def choose_targets(tallies: Sequence[BattleTally], ratings: Ratings, alpha: float,
                   truncated: Truncation | None = None,
                   allow_truncated: bool = True, records: Records | None = None
                   ) -> list[Target]:
    """Eq. 5 per instruction (sorted by id) and its best candidate; ties go to the higher
    global rating, then the name (`scoring.select_best`). Without `allow_truncated`, only
    candidates whose answer is complete compete, where the instruction has one. With
    `records`, only those of them with the best test record compete."""
    truncated = truncated or {}
    by_instruction: dict[str, list[BattleTally]] = defaultdict(list)
    for tally in tallies:
        by_instruction[tally.instruction_id].append(tally)
    targets = []
    for instruction_id in sorted(by_instruction):
        group = by_instruction[instruction_id]
        battles = [InstructionBattle(t.attacker, t.defender, *t.local) for t in group]
        scores = final_scores(battles, ratings.chosen, alpha=alpha)
        best = select_best(best_recorded(scores, records, instruction_id), ratings.chosen)
        complete = {e: v for e, v in scores.items() if not truncated.get((instruction_id, e))}
        winner, skipped = best, False
        if not allow_truncated and complete and best not in complete:
            winner = select_best(best_recorded(complete, records, instruction_id),
                                 ratings.chosen)
            skipped = True
        targets.append(Target(
            instruction_id=instruction_id,
            winner=winner,
            scores=scores,
            battles=len(group),
            judged_battles=sum(t.judged for t in group),
            skipped_truncated=skipped,
            all_truncated=not complete,
        ))
    return targets


def rating_draws(tallies: Sequence[BattleTally], ratings: Ratings, experts: Sequence[str],
                 options: StandingsOptions) -> tuple[np.ndarray, str]:
    """Alternative global ratings (draws x experts, in `experts` order) to re-choose targets
    with, and what they are: online Elo in `options.stability_orders` random orders for
    `rating: online`; the bootstrap resamples behind the intervals otherwise."""
    battles = [t.as_battle() for t in tallies if t.judged]
    index = {e: j for j, e in enumerate(experts)}
    if not battles:
        return np.full((1, len(experts)), options.initial_rating), "no judged battle"
    if ratings.method == "online":
        rng = np.random.default_rng(derive_seed("stability", options.seed))
        orders = np.stack([rng.permutation(len(battles))
                           for _ in range(options.stability_orders)])
        names, runs = online_elo_runs(battles, orders, k=options.k, initial=options.initial_rating)
        draws = np.full((len(orders), len(experts)), options.initial_rating)
        for j, name in enumerate(names):
            draws[:, index[name]] = runs[:, j]
        return draws, f"{options.stability_orders} random orders of the online Elo"
    draws = np.array([[sample.get(e, ratings.chosen[e]) for e in experts]
                      for sample in ratings.samples] or [[ratings.chosen[e] for e in experts]])
    return draws, f"{len(draws)} bootstrap resamples of the {METHODS[ratings.method]} ratings"


def target_agreement(tallies: Sequence[BattleTally], targets: Sequence[Target],
                     experts: Sequence[str], draws: np.ndarray, alpha: float,
                     truncated: Truncation | None = None, allow_truncated: bool = True,
                     tolerance: float = 1e-12, records: Records | None = None
                     ) -> dict[str, float]:
    """Per instruction, the share of rating draws (rows of `draws`, experts in `experts`
    order) under which eq. 5 picks the same target as `targets` did, by the same rules as
    `choose_targets` (vectorised over the draws)."""
    truncated = truncated or {}
    rank = {e: r for r, e in enumerate(sorted(experts))}
    column = {e: j for j, e in enumerate(experts)}
    entries: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for t in tallies:
        local_a, local_d = t.local
        entries[(t.instruction_id, t.attacker)].append((t.defender, local_a))
        entries[(t.instruction_id, t.defender)].append((t.attacker, local_d))
    slots = sorted(entries)  # by instruction, then candidate
    if not slots:
        return {}
    cand, opp, local, slot_of_entry = [], [], [], []
    for s, key in enumerate(slots):
        for opponent, x in entries[key]:
            cand.append(column[key[1]])
            opp.append(column[opponent])
            local.append(x)
            slot_of_entry.append(s)
    counts = np.bincount(slot_of_entry, minlength=len(slots)).astype(float)
    entry_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    cand_a, opp_a = np.array(cand), np.array(opp)
    local_mean = np.add.reduceat(np.array(local), entry_starts) / counts
    instructions = [key[0] for key in slots]
    inst_starts = np.array([i for i, key in enumerate(instructions)
                            if i == 0 or key != instructions[i - 1]])
    inst_of_slot = np.cumsum(np.isin(np.arange(len(slots)), inst_starts)) - 1
    slot_cand = np.array([column[key[1]] for key in slots])
    slot_rank = np.array([rank[key[1]] for key in slots], dtype=float)
    cut = np.array([bool(truncated.get(key)) for key in slots])
    has_complete = np.zeros(len(inst_starts), dtype=bool)
    np.logical_or.at(has_complete, inst_of_slot, ~cut)
    eligible = allow_truncated | ~cut | ~has_complete[inst_of_slot]
    if records is not None:  # then only the eligible answers with the best test record
        record = np.where(eligible, [records.get(key, 0.0) for key in slots], -np.inf)
        eligible &= record >= np.maximum.reduceat(record, inst_starts)[inst_of_slot]
    chosen = {t.instruction_id: rank[t.winner] for t in targets}
    chosen_rank = np.array([chosen[instructions[i]] for i in inst_starts], dtype=float)
    agree = np.zeros(len(inst_starts))
    for start in range(0, len(draws), 16):  # bounds the (draws x entries) arrays
        block = np.asarray(draws[start:start + 16], dtype=float)
        expected = 1.0 / (1.0 + 10.0 ** ((block[:, opp_a] - block[:, cand_a]) / 400.0))
        final = alpha * np.add.reduceat(expected, entry_starts, axis=1) / counts \
            + (1.0 - alpha) * local_mean
        final = np.where(eligible, final, -np.inf)
        best = np.maximum.reduceat(final, inst_starts, axis=1)
        tied = final >= best[:, inst_of_slot] - tolerance
        rating = np.where(tied, block[:, slot_cand], -np.inf)
        top = np.maximum.reduceat(rating, inst_starts, axis=1)
        tied &= rating >= top[:, inst_of_slot]
        winner = np.minimum.reduceat(np.where(tied, slot_rank, np.inf), inst_starts, axis=1)
        agree += (winner == chosen_rank).sum(axis=0)
    return {instructions[i]: float(a / len(draws)) for i, a in zip(inst_starts, agree,
                                                                    strict=True)}


@dataclass(frozen=True)
class Standings:
    """What `standings` makes of an arena's votes."""

    experts: list[str]
    """The arena's experts, then any other competitor the votes name (`competitors`)."""
    count: VoteCount
    """Battles tallied under the bias policy, with the tests and weights behind them."""
    ratings: Ratings
    truncated: dict[tuple[str, str], bool]
    """(instruction_id, expert) -> whether that expert's answer was cut."""
    targets: list[Target]
    """Per instruction (sorted by id), the eq. 5 winner."""
    stability: dict[str, float] | None = None
    """Per instruction, the share of alternative ratings that choose the same target (None:
    not asked for)."""
    drawn: str | None = None
    """What the alternative ratings were, in words (for the card)."""

    @property
    def tallies(self) -> list[BattleTally]:
        return self.count.tallies


def standings(votes: Mapping[str, Sequence[Any]], experts: Sequence[str],
              options: StandingsOptions, cut: Mapping[str, tuple[bool, bool]] | None = None,
              *, stability: bool = True) -> Standings:
    """Ratings and targets of the arena from its vote columns (`battle_id`, `instruction_id`,
    `attacker`, `defender`, `judge`, `order`, `verdict`, `winner`; one row per vote).

    `experts` lists the arena's experts (their order is the order of ratings and tables);
    `cut` maps a battle id to whether its (attacker's, defender's) answer was cut by the length
    limit (missing battles: complete). With `stability`, each target is chosen again under
    alternative ratings (`Standings.stability`)."""
    everyone = competitors(experts, votes)
    llm, runs = split_kinds(votes)
    count = count_votes(llm, options.bias_policy, options.bias_confidence)
    if options.execution != "off":
        count = replace(count, tallies=with_execution(count.tallies, runs, options.execution))
    ratings = compute_ratings(count.tallies, everyone, options)
    truncated = truncation_of(count.tallies, cut or {})
    records = record_scores(runs) if options.execution == "record" else None
    targets = choose_targets(count.tallies, ratings, options.alpha, truncated,
                             options.allow_truncated_targets, records)
    if not stability:
        return Standings(everyone, count, ratings, truncated, targets)
    draws, drawn = rating_draws(count.tallies, ratings, everyone, options)
    agreement = target_agreement(count.tallies, targets, everyone, draws, options.alpha,
                                 truncated, options.allow_truncated_targets, records=records)
    return Standings(everyone, count, ratings, truncated, targets, agreement, drawn)
