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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warriorcoder.builders.common import derive_seed
from warriorcoder.config import JudgeConfig, SelectConfig
from warriorcoder.dataset_cards import CardSection, Figure, markdown_table, render_png
from warriorcoder.scoring.agreement import (
    BiasTest,
    category_counts,
    fleiss_kappa,
    position_bias,
    position_bias_test,
    win_rate_matrix,
)
from warriorcoder.scoring.elo import (
    Battle,
    CandidateScore,
    InstructionBattle,
    battle_outcome,
    bootstrap_elo_samples,
    bootstrap_samples,
    bradley_terry,
    final_scores,
    local_scores,
    online_elo,
    online_elo_runs,
    percentile_intervals,
    permutation_elo,
    select_best,
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
    if policy not in ("downweight", "reask", "drop", "none"):
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


def count_votes(votes: Mapping[str, Sequence[Any]], judge: JudgeConfig) -> VoteCount:
    """Flag position-biased judges and tally the battles under `judge.bias_policy`; the one
    place votes become battle outcomes (the votes card and `select` both call it)."""
    tests = judge_bias_tests(votes, judge.bias_confidence)
    weights = bias_weights(tests, judge.bias_policy)
    return VoteCount(tally_battles(votes, weights), tests, weights, judge.bias_policy,
                     judge.bias_confidence)


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
    tallies: Sequence[BattleTally], experts: Sequence[str], select: SelectConfig
) -> Ratings:
    """Online Elo in a seeded order, permutation-averaged Elo and Bradley-Terry over the judged
    battles (sorted by id); experts without a judged battle keep the initial rating."""
    battles = [t.as_battle() for t in tallies if t.judged]
    order_seed = derive_seed("elo-order", select.seed)
    k, initial = select.k, select.initial_rating
    permutations = select.elo_permutations

    permutation_seed = derive_seed("elo-permutations", select.seed)

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
            seed = derive_seed("bootstrap", select.seed, method)
            if method == "bradley_terry":
                resampled = bootstrap_samples(battles, bt, rounds=select.bootstrap_rounds,
                                              seed=seed)
            else:  # online Elo (in draw order) or its mean over orders, all resamples at once
                resampled = bootstrap_elo_samples(
                    battles, select.bootstrap_rounds, seed, k=k, initial=initial,
                    permutations=None if method == "online" else
                    min(permutations, BOOTSTRAP_PERMUTATIONS),
                    permutation_seed=permutation_seed)
            intervals[method] = percentile_intervals(resampled)
            if method == select.rating:
                samples = resampled
    nan = (math.nan, math.nan)
    for method in METHODS:
        values[method] = {e: values.get(method, {}).get(e, initial) for e in experts}
        intervals[method] = {e: intervals.get(method, {}).get(e, nan) for e in experts}
    return Ratings(values, intervals, select.rating, order_seed, len(battles), samples)


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


def choose_targets(tallies: Sequence[BattleTally], ratings: Ratings, alpha: float,
                   truncated: Truncation | None = None,
                   allow_truncated: bool = True) -> list[Target]:
    """Eq. 5 per instruction (sorted by id) and its best candidate; ties go to the higher
    global rating, then the name (`scoring.select_best`). Without `allow_truncated`, only
    candidates whose answer is complete compete, where the instruction has one."""
    truncated = truncated or {}
    by_instruction: dict[str, list[BattleTally]] = defaultdict(list)
    for tally in tallies:
        by_instruction[tally.instruction_id].append(tally)
    targets = []
    for instruction_id in sorted(by_instruction):
        group = by_instruction[instruction_id]
        battles = [InstructionBattle(t.attacker, t.defender, *t.local) for t in group]
        scores = final_scores(battles, ratings.chosen, alpha=alpha)
        best = select_best(scores, ratings.chosen)
        complete = {e: v for e, v in scores.items() if not truncated.get((instruction_id, e))}
        winner, skipped = best, False
        if not allow_truncated and complete and best not in complete:
            winner, skipped = select_best(complete, ratings.chosen), True
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
                 select: SelectConfig) -> tuple[np.ndarray, str]:
    """Alternative global ratings (draws x experts, in `experts` order) to re-choose targets
    with, and what they are: online Elo in `select.stability_orders` random orders for
    `rating: online`; the bootstrap resamples behind the intervals otherwise."""
    battles = [t.as_battle() for t in tallies if t.judged]
    index = {e: j for j, e in enumerate(experts)}
    if not battles:
        return np.full((1, len(experts)), select.initial_rating), "no judged battle"
    if ratings.method == "online":
        rng = np.random.default_rng(derive_seed("stability", select.seed))
        orders = np.stack([rng.permutation(len(battles))
                           for _ in range(select.stability_orders)])
        names, runs = online_elo_runs(battles, orders, k=select.k, initial=select.initial_rating)
        draws = np.full((len(orders), len(experts)), select.initial_rating)
        for j, name in enumerate(names):
            draws[:, index[name]] = runs[:, j]
        return draws, f"{select.stability_orders} random orders of the online Elo"
    draws = np.array([[sample.get(e, ratings.chosen[e]) for e in experts]
                      for sample in ratings.samples] or [[ratings.chosen[e] for e in experts]])
    return draws, f"{len(draws)} bootstrap resamples of the {METHODS[ratings.method]} ratings"


def target_agreement(tallies: Sequence[BattleTally], targets: Sequence[Target],
                     experts: Sequence[str], draws: np.ndarray, alpha: float,
                     truncated: Truncation | None = None, allow_truncated: bool = True,
                     tolerance: float = 1e-12) -> dict[str, float]:
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
        "of valid votes, a Tie vote half to each side, each judge's vote weighed as the Judges "
        "section says; battles with no valid vote are left out). "
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


POLICY_TEXT = {
    "downweight": "their votes weigh 2 x min(share, 1 - share), the share of their verdicts "
                  "that follow the content if the rest follow the position",
    "reask": "they were asked again with the answers swapped; a pair that disagrees counts "
             "as one tie, a pair that agrees as one vote (FastChat's rule)",
    "drop": "their votes are left out",
    "none": "their votes count like every other (`judge.bias_policy: none`)",
}


def judges_section(votes: Mapping[str, Sequence[Any]], tallies: Sequence[BattleTally],
                   both_orders: bool, count: VoteCount | None = None) -> CardSection:
    """Per judge: votes, invalid verdicts, ties, position bias (with its binomial test, flag
    and vote weight when `count` is given); and Fleiss' kappa."""
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
    if count is not None:
        header += ["CI (Bonferroni)", "p (binomial)", "biased", "vote weight"]
    rows = []
    for judge in sorted(counts):
        c, b = counts[judge], bias[judge]
        row: list[Any] = [judge, c["votes"], c["invalid"], c["tie"], c["attempts"] / c["votes"],
                          "n/a" if math.isnan(b.first_share) else
                          f"{b.first_share:.3f} of {b.decided}"]
        if both_orders:
            row.append("n/a" if b.flip_rate is None else f"{b.flip_rate:.3f} of {b.pairs}")
        if count is not None:
            test = count.tests[judge]
            row += [f"[{test.low:.3f}, {test.high:.3f}]", f"{test.p_value:.2g}",
                    "**yes**" if test.flagged else "no", f"{count.weights[judge]:.3f}"]
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
        + ".\n\n" + markdown_table(header, rows) + _bias_text(count)
        + f"\n\nInter-judge agreement (Fleiss' kappa over attacker / defender / tie, every valid "
        f"vote a rating): **{kappa:.3f}**" + (" (undefined)" if math.isnan(kappa) else "")
        + f".\n\nInvalid verdicts (no parsable verdict after every attempt): {invalid} of "
        f"{len(votes['winner'])} votes. Battles with no valid vote at all: {unjudged} of "
        f"{len(tallies)}; they are left out of the ratings." + _tie_text(counts)
    )
    return CardSection("Judges", text)


TIE_HEAVY = 0.8
"""A judge whose valid votes are at least this share of ties is named on the card."""


def _tie_text(counts: Mapping[str, Counter[str]]) -> str:
    """Names the judges that mostly answer Tie, and how to check whether a judge can judge."""
    heavy = [judge for judge, c in sorted(counts.items())
             if (valid := c["votes"] - c["invalid"]) and c["tie"] >= TIE_HEAVY * valid]
    text = ""
    if heavy:
        text = (f" {', '.join(f'`{j}`' for j in heavy)} answered Tie in {TIE_HEAVY:.0%} or more "
                "of their valid votes, as a judge that cannot tell the answers apart does.")
    return (text + " Whether a judge can tell a right answer from a wrong one at all is what "
            "`warriorcoder check-judges` measures, on HumanEval pairs of known outcome.")


def _bias_text(count: VoteCount | None) -> str:
    if count is None:
        return ""
    flagged = count.flagged
    named = ", ".join(f"`{j}`" for j in flagged) or "none"
    return (
        f"\n\nA judge is **biased** when a two-sided exact binomial test rejects a first-shown "
        f"share of 0.5 at {count.confidence:.0%} confidence for the whole panel (Bonferroni: "
        f"p < {1 - count.confidence:.2g} / {len(count.tests)} judges; the interval is "
        "Clopper-Pearson's at that level). Flagged: " + named + ". Bias policy "
        f"`judge.bias_policy: {count.policy}`: "
        + (POLICY_TEXT[count.policy] if flagged or count.policy == "none" else
           "no judge is flagged, so every vote counts 1")
        + ". A judge's votes on one battle in both orders always count as one verdict (the "
        "agreed winner, or a tie). Ratings, vote shares and targets below use these weights."
    )


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
