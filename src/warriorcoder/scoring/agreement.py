"""Judge statistics for the cards: Fleiss' kappa, position bias, the expert win-rate matrix."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from warriorcoder.scoring.elo import Battle
from warriorcoder.scoring.verdicts import map_verdict


def category_counts(
    ratings: Iterable[Iterable[Hashable | None]], categories: Sequence[Hashable]
) -> np.ndarray:
    """Items x categories count table from each item's ratings (None, e.g. invalid, skipped)."""
    column = {category: j for j, category in enumerate(categories)}
    rows = []
    for item, item_ratings in enumerate(ratings):
        row = np.zeros(len(categories), dtype=np.int64)
        for rating in item_ratings:
            if rating is None:
                continue
            if rating not in column:
                raise ValueError(f"item {item}: rating {rating!r} is not one of {list(categories)}")
            row[column[rating]] += 1
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(len(rows), len(categories))


def fleiss_kappa(table: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Fleiss' kappa of an items x categories table of rating counts.

    Items may have different numbers of raters: each item's agreement is the share of agreeing
    rater pairs among its own raters, and the chance agreement uses the pooled category shares
    (with equal raters per item this is exactly Fleiss' kappa). Items with fewer than two
    ratings are left out. NaN when undefined (no item left, or every rating in one category).
    """
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"table must be 2-D (items x categories), got shape {counts.shape}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("table counts must be finite and >= 0")
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    if len(counts) == 0:
        return float("nan")
    agreement = ((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1))).mean()
    shares = counts.sum(axis=0) / raters.sum()
    chance = float((shares**2).sum())
    if chance >= 1.0:
        return float("nan")
    return float((agreement - chance) / (1.0 - chance))


@dataclass(frozen=True)
class PositionBias:
    """How one judge's verdicts depend on the order of the two answers."""

    first_share: float
    """Share of verdicts for the first-shown answer among its valid non-tie verdicts (NaN: none)."""
    decided: int
    """Valid non-tie verdicts behind `first_share`."""
    ties: int
    flip_rate: float | None
    """With both orders: share of battles whose winner changes with the order (None: no pairs)."""
    pairs: int
    """Battles judged validly in both orders."""


def position_bias(
    judges: Sequence[str],
    battle_ids: Sequence[Hashable],
    verdicts: Sequence[str | None],
    attacker_first: Sequence[bool],
) -> dict[str, PositionBias]:
    """Per-judge position bias from the votes' columns (one entry per vote).

    `verdicts` are the positional `"A"`/`"B"`/`"Tie"` (None for invalid); `attacker_first` says
    whether the attacker's answer was shown as A.
    """
    lengths = {len(judges), len(battle_ids), len(verdicts), len(attacker_first)}
    if len(lengths) != 1:
        raise ValueError("judges, battle_ids, verdicts and attacker_first must have equal lengths")
    first: dict[str, int] = {}
    decided: dict[str, int] = {}
    ties: dict[str, int] = {}
    by_order: dict[tuple[str, Hashable], dict[bool, str]] = {}
    for judge, battle, verdict, a_first in zip(
        judges, battle_ids, verdicts, attacker_first, strict=True
    ):
        first.setdefault(judge, 0)
        decided.setdefault(judge, 0)
        ties.setdefault(judge, 0)
        if verdict is None:
            continue
        if verdict == "Tie":
            ties[judge] += 1
        else:
            decided[judge] += 1
            first[judge] += verdict == "A"
        by_order.setdefault((judge, battle), {}).setdefault(
            bool(a_first), map_verdict(verdict, a_first)
        )
    flips: dict[str, list[bool]] = {}
    for (judge, _), winners in by_order.items():
        if len(winners) == 2:
            flips.setdefault(judge, []).append(winners[True] != winners[False])
    result = {}
    for judge in sorted(first):
        judge_flips = flips.get(judge, [])
        result[judge] = PositionBias(
            first_share=first[judge] / decided[judge] if decided[judge] else float("nan"),
            decided=decided[judge],
            ties=ties[judge],
            flip_rate=sum(judge_flips) / len(judge_flips) if judge_flips else None,
            pairs=len(judge_flips),
        )
    return result


@dataclass(frozen=True)
class BiasTest:
    """Whether a judge's first-shown share departs from 0.5 beyond chance."""

    first: int
    decided: int
    p_value: float
    """Two-sided exact binomial test of first ~ Binomial(decided, 0.5) (1.0 with no data)."""
    low: float
    high: float
    """Clopper-Pearson interval of the first-shown share at the test's confidence."""
    flagged: bool

    @property
    def share(self) -> float:
        return self.first / self.decided if self.decided else float("nan")

    @property
    def content_share(self) -> float:
        """2 x min(share, 1 - share): the share of its verdicts that follow the content if the
        rest simply pick a position (1.0 for an unbiased judge, 0.0 for one that always picks
        the same position)."""
        if not self.decided:
            return 1.0
        return 2.0 * min(self.share, 1.0 - self.share)


def position_bias_test(first: int, decided: int, confidence: float = 0.95) -> BiasTest:
    """Two-sided exact binomial test of `first` first-shown picks among `decided` verdicts
    against 0.5; flagged when p < 1 - confidence (0.5 then lies outside the exact interval)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if decided < 0 or not 0 <= first <= decided:
        raise ValueError(f"need 0 <= first <= decided, got first={first}, decided={decided}")
    if decided == 0:
        return BiasTest(0, 0, 1.0, 0.0, 1.0, False)
    from scipy.stats import binomtest

    result = binomtest(first, decided, 0.5, alternative="two-sided")
    interval = result.proportion_ci(confidence_level=confidence, method="exact")
    return BiasTest(first, decided, float(result.pvalue), float(interval.low),
                    float(interval.high), bool(result.pvalue < 1 - confidence))


def win_rate_matrix(battles: Iterable[Battle], experts: Sequence[str]) -> np.ndarray:
    """W[i, j]: expert i's mean outcome against expert j (a draw counts half), for the heatmap.

    NaN on the diagonal and where the two never met.
    """
    index = {name: i for i, name in enumerate(experts)}
    scores = np.zeros((len(experts), len(experts)))
    games = np.zeros((len(experts), len(experts)))
    for position, (a, b, outcome) in enumerate(battles):
        if a not in index or b not in index:
            raise ValueError(f"battle {position}: {a!r} or {b!r} is not in experts {list(experts)}")
        i, j = index[a], index[b]
        scores[i, j] += outcome
        scores[j, i] += 1.0 - outcome
        games[i, j] += 1
        games[j, i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = scores / games
    rates[games == 0] = np.nan
    np.fill_diagonal(rates, np.nan)
    return rates
