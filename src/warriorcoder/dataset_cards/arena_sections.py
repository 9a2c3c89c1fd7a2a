"""The arena's card sections: what the votes, battles and SFT targets show.

Judges (position bias with its test, invalid verdicts, ties, Fleiss' kappa), ratings with
their intervals, win rates (the paper's Fig. 4), the targets each expert won, and the code in
the answers; the numbers come from `scoring.standings` and `scoring.answer_stats`, built by
the `judge`, `battle` and `select` phases into their cards.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from warriorcoder.dataset_cards.card import CardSection, Figure, markdown_table
from warriorcoder.dataset_cards.figures import render_png
from warriorcoder.scoring.agreement import (
    category_counts,
    fleiss_kappa,
    position_bias,
    win_rate_matrix,
)
from warriorcoder.scoring.answer_stats import (
    ResponseStats,
    battle_answers,
    response_stats,
    target_groups,
)
from warriorcoder.scoring.standings import (
    BOOTSTRAP_PERMUTATIONS,
    METHODS,
    Ratings,
    StandingsOptions,
    Target,
)
from warriorcoder.scoring.tally import ATTACKER_FIRST, WINNERS, BattleTally, VoteCount


def _interval(pair: tuple[float, float]) -> str:
    low, high = pair
    return "n/a" if math.isnan(low) else f"[{low:.0f}, {high:.0f}]"


def ratings_section(tallies: Sequence[BattleTally], ratings: Ratings, experts: Sequence[str],
                    options: StandingsOptions) -> CardSection:
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
        f"Online Elo (eq. 3-4): K = {options.k:g}, initial {options.initial_rating:g}, battles "
        "sorted by `battle_id` then processed in the order "
        f"`numpy.random.default_rng({ratings.order_seed}).permutation(n)`. Permutation Elo: the "
        f"mean of online Elo over {options.elo_permutations} random orders. Bradley-Terry: the "
        "maximum-likelihood fit on the same scale. Intervals: percentile bootstrap over battles, "
        f"{options.bootstrap_rounds} resamples (the permutation Elo averages "
        f"{min(options.elo_permutations, BOOTSTRAP_PERMUTATIONS)} orders per resample). "
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
        ax.set_title("Win rate of row expert\nagainst column expert")

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


# ---- code in the answers ---------------------------------------------------------------


HEADER = ("answers", "with a fenced block", "with a Python block", "Python parses",
          "mean length (chars)")


def share_cell(count: int, total: int) -> str:
    """`count/total (p%)`, the form every share takes in these tables."""
    return f"{count}/{total} ({100 * count / total:.0f}%)" if total else "0/0 (-)"


def stats_row(stats: ResponseStats) -> list[object]:
    n = stats.responses
    return [n, share_cell(stats.fenced, n), share_cell(stats.python, n),
            share_cell(stats.parsing, n), f"{stats.mean_chars:.0f}"]


def stats_table(groups: Mapping[str, Sequence[str]], label: str) -> str:
    """One row per group of answers (e.g. per expert), in the order given."""
    return markdown_table([label, *HEADER],
                          [[name, *stats_row(response_stats(texts))]
                           for name, texts in groups.items()])


_EXPLAINED = (
    "A fenced block is a Markdown code fence (one cut by the length limit runs to the end of "
    "the answer); blocks tagged `python`, `py`, `python3` or untagged count as Python; an "
    "answer parses when it has a Python block and every one passes `ast.parse`."
)


def battle_code_section(rows: Sequence[Mapping[str, object]]) -> CardSection:
    """The battles card's section: code in each expert's answers."""
    text = ("Each expert's answers (one per instruction it answered). " + _EXPLAINED + "\n\n"
            + stats_table(battle_answers(rows), "expert"))
    return CardSection("Code in the answers", text)


def target_code_section(rows: Sequence[Mapping[str, object]]) -> CardSection:
    """The sft_final card's section: code in the chosen targets against the losers."""
    split, experts = target_groups(rows)
    text = ("Code in the SFT targets (`response`) against the candidates that lost (the other "
            "entries of `candidates`); a selection that works picks answers with working code "
            "more often than it leaves them. " + _EXPLAINED + "\n\n"
            + stats_table(split, "answers") + "\n\nPer expert:\n\n"
            + stats_table(experts, "expert"))
    return CardSection("Code in the targets", text)
