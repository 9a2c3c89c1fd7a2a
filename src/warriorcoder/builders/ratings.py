"""From votes to battles, ratings and targets, and the card sections that show them.

Shared by `judge` (the `votes` card) and `select` (the rows and card of `sft_final`); the
arithmetic (eq. 2-5, Elo, Bradley-Terry, bootstrap, kappa, position bias) is `scoring/`'s.

A battle's outcome is its majority of valid votes (a Tie vote gives each side half). A battle
whose votes are all invalid is *unjudged*: it carries no information, so it is left out of
every rating; its local scores are the undecided 0.5 / 0.5, so on its instruction eq. 5 falls
back to the Elo expectation alone (see `SelectConfig.keep_unjudged`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warriorcoder.builders.common import derive_seed
from warriorcoder.config import SelectConfig
from warriorcoder.dataset_cards import CardSection, Figure, markdown_table, render_png
from warriorcoder.scoring.agreement import (
    category_counts,
    fleiss_kappa,
    position_bias,
    win_rate_matrix,
)
from warriorcoder.scoring.elo import (
    Battle,
    CandidateScore,
    InstructionBattle,
    battle_outcome,
    bootstrap_intervals,
    bradley_terry,
    final_scores,
    local_scores,
    online_elo,
    permutation_elo,
    select_best,
    vote_totals,
)

ATTACKER_FIRST = "attacker_first"
DEFENDER_FIRST = "defender_first"
ORDERS = (ATTACKER_FIRST, DEFENDER_FIRST)
WINNERS = ("attacker", "defender", "tie")
METHODS = {"online": "online Elo", "permutation": "permutation Elo",
           "bradley_terry": "Bradley-Terry"}
BOOTSTRAP_PERMUTATIONS = 10
"""Orders averaged per bootstrap resample of the permutation Elo (its cost grows with them)."""


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


def tally_battles(votes: Mapping[str, Sequence[Any]]) -> list[BattleTally]:
    """Battles (sorted by id) from vote columns `battle_id`, `instruction_id`, `attacker`,
    `defender` and `winner`."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, battle_id in enumerate(votes["battle_id"]):
        groups[battle_id].append(index)
    tallies = []
    for battle_id in sorted(groups):
        indexes = groups[battle_id]
        first = indexes[0]
        winners = [votes["winner"][i] for i in indexes]
        t_attacker, t_defender = vote_totals(winners)
        tallies.append(BattleTally(
            battle_id=battle_id,
            instruction_id=votes["instruction_id"][first],
            attacker=votes["attacker"][first],
            defender=votes["defender"][first],
            votes=len(indexes),
            valid=sum(w != "invalid" for w in winners),
            t_attacker=t_attacker,
            t_defender=t_defender,
        ))
    return tallies


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

    @property
    def chosen(self) -> dict[str, float]:
        return self.values[self.method]


def compute_ratings(
    tallies: Sequence[BattleTally], experts: Sequence[str], select: SelectConfig
) -> Ratings:
    """Online Elo in a seeded order, permutation-averaged Elo and Bradley-Terry over the judged
    battles (sorted by id); experts without a judged battle keep the initial rating."""
    battles = [t.as_battle() for t in tallies if t.judged]
    order_seed = derive_seed("elo-order", select.seed)
    k, initial = select.k, select.initial_rating
    permutations = select.elo_permutations

    def online(sample: Sequence[Battle]) -> Mapping[str, float]:
        return online_elo(sample, k=k, initial=initial)

    def permuted(sample: Sequence[Battle], orders: int = permutations) -> Mapping[str, float]:
        return permutation_elo(sample, k=k, initial=initial, permutations=orders,
                               seed=derive_seed("elo-permutations", select.seed))

    def bt(sample: Sequence[Battle]) -> Mapping[str, float]:
        return bradley_terry(sample, initial=initial)

    values: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    if battles:
        order = np.random.default_rng(order_seed).permutation(len(battles)).tolist()
        values["online"] = dict(online_elo(battles, k=k, initial=initial, order=order))
        values["permutation"] = dict(permuted(battles))
        values["bradley_terry"] = dict(bt(battles))
        resample_fns = {
            "online": online,
            "permutation": lambda s: permuted(s, min(permutations, BOOTSTRAP_PERMUTATIONS)),
            "bradley_terry": bt,
        }
        for method, fn in resample_fns.items():
            intervals[method] = bootstrap_intervals(
                battles, fn, rounds=select.bootstrap_rounds,
                seed=derive_seed("bootstrap", select.seed, method))
    nan = (math.nan, math.nan)
    for method in METHODS:
        values[method] = {e: values.get(method, {}).get(e, initial) for e in experts}
        intervals[method] = {e: intervals.get(method, {}).get(e, nan) for e in experts}
    return Ratings(values, intervals, select.rating, order_seed, len(battles))


@dataclass(frozen=True)
class Target:
    """The chosen response of one instruction and every candidate's eq. 5 parts."""

    instruction_id: str
    winner: str
    scores: dict[str, CandidateScore]
    battles: int
    judged_battles: int

    @property
    def judged(self) -> bool:
        return self.judged_battles > 0


def choose_targets(tallies: Sequence[BattleTally], ratings: Ratings, alpha: float) -> list[Target]:
    """Eq. 5 per instruction (sorted by id) and its best candidate; ties go to the higher
    global rating, then the name (`scoring.select_best`)."""
    by_instruction: dict[str, list[BattleTally]] = defaultdict(list)
    for tally in tallies:
        by_instruction[tally.instruction_id].append(tally)
    targets = []
    for instruction_id in sorted(by_instruction):
        group = by_instruction[instruction_id]
        battles = [InstructionBattle(t.attacker, t.defender, *t.local) for t in group]
        scores = final_scores(battles, ratings.chosen, alpha=alpha)
        targets.append(Target(
            instruction_id=instruction_id,
            winner=select_best(scores, ratings.chosen),
            scores=scores,
            battles=len(group),
            judged_battles=sum(t.judged for t in group),
        ))
    return targets


# ---- card sections ------------------------------------------------------------------------


def _interval(pair: tuple[float, float]) -> str:
    low, high = pair
    return "n/a" if math.isnan(low) else f"[{low:.0f}, {high:.0f}]"


def ratings_section(tallies: Sequence[BattleTally], ratings: Ratings, experts: Sequence[str],
                    select: SelectConfig) -> CardSection:
    """The ratings table with 95% intervals, and the battle record behind it."""
    record: dict[str, Counter[str]] = {e: Counter() for e in experts}
    for t in tallies:
        if not t.judged:
            continue
        for name, result in ((t.attacker, t.outcome), (t.defender, 1.0 - t.outcome)):
            record[name]["battles"] += 1
            record[name]["wins" if result == 1 else "losses" if result == 0 else "draws"] += 1
    order = sorted(experts, key=lambda e: -ratings.chosen[e])
    header = ["expert", "battles", "wins", "draws", "losses"]
    for method, label in METHODS.items():
        header += [label + (" (eq. 5)" if method == ratings.method else ""), f"{label} 95% CI"]
    rows = []
    for e in order:
        row: list[Any] = [e, *(record[e][c] for c in ("battles", "wins", "draws", "losses"))]
        for method in METHODS:
            row += [f"{ratings.values[method][e]:.1f}", _interval(ratings.intervals[method][e])]
        rows.append(row)
    text = (
        f"Global scores over the {ratings.judged_battles} judged battles (outcome: the majority "
        "of valid votes, a Tie vote half to each side; battles with no valid vote are left out). "
        f"Online Elo (eq. 3-4): K = {select.k:g}, initial {select.initial_rating:g}, battles "
        "sorted by `battle_id` then processed in the order "
        f"`numpy.random.default_rng({ratings.order_seed}).permutation(n)`. Permutation Elo: the "
        f"mean of online Elo over {select.elo_permutations} random orders. Bradley-Terry: the "
        "maximum-likelihood fit on the same scale. Intervals: percentile bootstrap over battles, "
        f"{select.bootstrap_rounds} resamples (the permutation Elo averages "
        f"{min(select.elo_permutations, BOOTSTRAP_PERMUTATIONS)} orders per resample). "
        f"`select.rating` = `{ratings.method}` feeds eq. 5.\n\n" + markdown_table(header, rows)
    )
    return CardSection("Ratings", text)


def win_rate_section(tallies: Sequence[BattleTally], experts: Sequence[str]) -> CardSection:
    """The expert-vs-expert win-rate heatmap (paper Fig. 4), as a figure and a table."""
    names = list(experts)
    rates = win_rate_matrix([t.as_battle() for t in tallies if t.judged], names)

    def draw(ax: Any) -> None:
        shown = np.ma.masked_invalid(rates)
        image = ax.imshow(shown, cmap="RdYlGn", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("opponent")
        ax.set_ylabel("expert")
        for i in range(len(names)):
            for j in range(len(names)):
                if not math.isnan(rates[i, j]):
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.figure.colorbar(image, ax=ax, label="win rate (draw = 1/2)")
        ax.set_title("Win rate of row expert against column expert")

    size = (2.0 + 0.9 * len(names), 1.6 + 0.8 * len(names))
    figure = Figure("figures/win_rate.png", "Win rates", render_png(draw, size=size))
    table = markdown_table(
        ["expert \\ opponent", *names],
        [[a, *("-" if math.isnan(rates[i, j]) else f"{rates[i, j]:.2f}"
               for j in range(len(names)))] for i, a in enumerate(names)],
    )
    text = ("Share of judged battles the row expert won against the column expert (a draw counts "
            "half), as in the paper's Fig. 4.\n\n" + table)
    return CardSection("Win rates", text, (figure,))


def judges_section(votes: Mapping[str, Sequence[Any]], tallies: Sequence[BattleTally],
                   both_orders: bool) -> CardSection:
    """Per judge: votes, invalid verdicts, ties, position bias; and Fleiss' kappa."""
    attacker_first = [o == ATTACKER_FIRST for o in votes["order"]]
    bias = position_bias(votes["judge"], votes["battle_id"], votes["verdict"], attacker_first)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for judge, winner, attempts in zip(votes["judge"], votes["winner"], votes["attempts"],
                                       strict=True):
        counts[judge]["votes"] += 1
        counts[judge][winner] += 1
        counts[judge]["attempts"] += attempts
    header = ["judge", "votes", "invalid", "ties", "mean attempts", "first-shown share"]
    if both_orders:
        header.append("flip rate")
    rows = []
    for judge in sorted(counts):
        c, b = counts[judge], bias[judge]
        row: list[Any] = [judge, c["votes"], c["invalid"], c["tie"], c["attempts"] / c["votes"],
                          "n/a" if math.isnan(b.first_share) else
                          f"{b.first_share:.3f} of {b.decided}"]
        if both_orders:
            row.append("n/a" if b.flip_rate is None else f"{b.flip_rate:.3f} of {b.pairs}")
        rows.append(row)
    by_battle: dict[str, list[str | None]] = defaultdict(list)
    for battle_id, winner in zip(votes["battle_id"], votes["winner"], strict=True):
        by_battle[battle_id].append(None if winner == "invalid" else winner)
    kappa = fleiss_kappa(category_counts(by_battle.values(), WINNERS))
    invalid = sum(c["invalid"] for c in counts.values())
    unjudged = sum(not t.judged for t in tallies)
    text = (
        "Position bias: the share of a judge's valid, non-tie verdicts that picked the answer "
        "shown first (0.5 is unbiased; the order is shuffled per vote)"
        + ("; flip rate: the share of battles judged validly in both orders whose winner "
           "changed with the order" if both_orders else "")
        + ".\n\n" + markdown_table(header, rows)
        + f"\n\nInter-judge agreement (Fleiss' kappa over attacker / defender / tie, every valid "
        f"vote a rating): **{kappa:.3f}**" + (" (undefined)" if math.isnan(kappa) else "")
        + f".\n\nInvalid verdicts (no parsable verdict after every attempt): {invalid} of "
        f"{len(votes['winner'])} votes. Battles with no valid vote at all: {unjudged} of "
        f"{len(tallies)}; they are left out of the ratings."
    )
    return CardSection("Judges", text)


def targets_section(targets: Sequence[Target], tallies: Sequence[BattleTally],
                    experts: Sequence[str], alpha: float, keep_unjudged: bool,
                    note: str = "") -> CardSection:
    """Share of SFT targets won by each expert, and by attackers vs defenders."""
    attackers = {t.instruction_id: t.attacker for t in tallies}
    kept = [t for t in targets if t.judged or keep_unjudged]
    won = Counter(t.winner for t in kept)
    total = max(len(kept), 1)
    rows = [[e, won[e], won[e] / total] for e in sorted(experts, key=lambda e: -won[e])]
    by_attacker = sum(t.winner == attackers[t.instruction_id] for t in kept)
    unjudged = sum(not t.judged for t in targets)
    text = (
        f"{note}Final score (eq. 5) with alpha = {alpha:g}: the candidate with the highest score "
        "becomes the instruction's target (a tie goes to the higher global rating). "
        f"Targets: {len(kept)}; won by the attacker {by_attacker}, by a defender "
        f"{len(kept) - by_attacker}. Instructions none of whose battles got a valid vote: "
        f"{unjudged}, " + ("kept, their target chosen by the global rating alone (local "
                           "scores 0.5)" if keep_unjudged else "dropped")
        + ".\n\n" + markdown_table(["expert", "targets won", "share"], rows)
    )
    return CardSection("Targets", text)
