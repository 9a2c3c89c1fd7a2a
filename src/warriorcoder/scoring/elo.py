"""Local scores, Elo ratings and the final score of paper section 3.3 (eq. 2-5).

A battle for the rating functions is `(a, b, s_a)`: two competitor names and a's outcome
(1 win, 0.5 draw, 0 loss). Ratings come back as `{name: rating}` sorted by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Battle = tuple[str, str, float]
RatingFn = Callable[[Sequence[Battle]], Mapping[str, float]]

_LN10 = math.log(10.0)


def expected_score(r_a: float, r_b: float) -> float:
    """Eq. 3: the probability that a player rated `r_a` beats one rated `r_b`."""
    return 1.0 / (1.0 + 10.0 ** ((r_b - r_a) / 400.0))


def vote_totals(winners: Iterable[str]) -> tuple[float, float]:
    """(t_attacker, t_defender) from mapped verdicts: a "tie" gives each half, "invalid" nothing."""
    t_attacker = t_defender = 0.0
    for position, winner in enumerate(winners):
        if winner == "attacker":
            t_attacker += 1.0
        elif winner == "defender":
            t_defender += 1.0
        elif winner == "tie":
            t_attacker += 0.5
            t_defender += 0.5
        elif winner != "invalid":
            raise ValueError(
                f"vote {position}: unknown winner {winner!r}; "
                "expected 'attacker', 'defender', 'tie' or 'invalid'"
            )
    return t_attacker, t_defender


def local_scores(votes_a: float, votes_b: float) -> tuple[float, float]:
    """Eq. 2: vote shares `t_A / (t_A + t_B)`; a Tie vote counts half to each side.

    With no valid vote at all the battle is undecided: (0.5, 0.5).
    """
    if votes_a < 0 or votes_b < 0 or not math.isfinite(votes_a + votes_b):
        raise ValueError(f"vote counts must be finite and >= 0, got ({votes_a}, {votes_b})")
    total = votes_a + votes_b
    if total == 0:
        return 0.5, 0.5
    return votes_a / total, votes_b / total


def battle_outcome(votes_a: float, votes_b: float) -> float:
    """A's outcome by majority of votes: 1 win, 0.5 draw (also with no votes), 0 loss."""
    local_scores(votes_a, votes_b)  # validates
    if votes_a > votes_b:
        return 1.0
    if votes_a < votes_b:
        return 0.0
    return 0.5


def _encode(battles: Sequence[Battle]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Validate battles; return sorted names and index/outcome arrays."""
    names = sorted({name for a, b, _ in battles for name in (a, b)})
    index = {name: i for i, name in enumerate(names)}
    a_idx = np.empty(len(battles), dtype=np.int64)
    b_idx = np.empty(len(battles), dtype=np.int64)
    outcome = np.empty(len(battles), dtype=np.float64)
    for position, (a, b, s) in enumerate(battles):
        if a == b:
            raise ValueError(f"battle {position}: {a!r} cannot battle itself")
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"battle {position}: outcome {s!r} must be in [0, 1] (1 win, 0 loss)")
        a_idx[position], b_idx[position], outcome[position] = index[a], index[b], s
    return names, a_idx, b_idx, outcome


def online_elo(
    battles: Sequence[Battle],
    k: float = 40.0,
    initial: float = 1000.0,
    order: Sequence[int] | None = None,
) -> dict[str, float]:
    """Eq. 3-4: online Elo over the battles, in `order` (indices into `battles`) or as given.

    Each update is zero-sum: B gains exactly what A loses.
    """
    names, a_idx, b_idx, outcome = _encode(battles)
    if order is None:
        sequence: Iterable[int] = range(len(battles))
    else:
        sequence = [int(i) for i in order]
        if sorted(sequence) != list(range(len(battles))):
            raise ValueError("order must be a permutation of range(len(battles))")
    ratings = [float(initial)] * len(names)
    a_list, b_list, s_list = a_idx.tolist(), b_idx.tolist(), outcome.tolist()
    for i in sequence:
        a, b = a_list[i], b_list[i]
        delta = k * (s_list[i] - 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / 400.0)))
        ratings[a] += delta
        ratings[b] -= delta
    return dict(zip(names, ratings, strict=True))


def _elo_runs(
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    outcome: np.ndarray,
    n_players: int,
    orders: np.ndarray,
    k: float,
    initial: float,
) -> np.ndarray:
    """Online Elo for each row of `orders` (R, T) at once; returns ratings (R, n_players)."""
    runs = orders.shape[0]
    ratings = np.full(runs * n_players, float(initial))
    offsets = (np.arange(runs) * n_players)[None, :]
    flat_a = np.ascontiguousarray(a_idx[orders].T) + offsets
    flat_b = np.ascontiguousarray(b_idx[orders].T) + offsets
    result = np.ascontiguousarray(outcome[orders].T)
    scale = _LN10 / 400.0
    for step in range(orders.shape[1]):
        fa, fb = flat_a[step], flat_b[step]
        ra, rb = ratings[fa], ratings[fb]
        delta = k * (result[step] - 1.0 / (1.0 + np.exp((rb - ra) * scale)))
        ratings[fa] = ra + delta
        ratings[fb] = rb - delta
    return ratings.reshape(runs, n_players)


def permutation_elo(
    battles: Sequence[Battle],
    k: float = 40.0,
    initial: float = 1000.0,
    permutations: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """Online Elo averaged over `permutations` random orders drawn from `seed`."""
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    names, a_idx, b_idx, outcome = _encode(battles)
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(len(battles)) for _ in range(permutations)])
    total = np.zeros(len(names))
    batch = max(1, 4_000_000 // max(1, len(battles)))  # bounds the (batch, T) index arrays
    for start in range(0, permutations, batch):
        runs = _elo_runs(
            a_idx, b_idx, outcome, len(names), orders[start : start + batch], k, initial
        )
        total += runs.sum(axis=0)
    return dict(zip(names, (total / permutations).tolist(), strict=True))


def bradley_terry(
    battles: Sequence[Battle],
    initial: float = 1000.0,
    scale: float = 400.0,
    ridge: float = 1e-4,
) -> dict[str, float]:
    """Bradley-Terry maximum likelihood on the Elo scale, ties as half wins, mean `initial`.

    P(a beats b) = 1 / (1 + 10 ** ((R_b - R_a) / scale)), as FastChat's `compute_mle_elo`.
    A tiny `ridge` penalty on the log-strengths keeps the ratings finite when a competitor
    wins (or loses) every battle and fixes the offset of disconnected groups; it does not
    move a well-determined fit noticeably.
    """
    names, a_idx, b_idx, outcome = _encode(battles)
    n = len(names)
    if n == 0:
        return {}
    wins = np.zeros((n, n))
    np.add.at(wins, (a_idx, b_idx), outcome)
    np.add.at(wins, (b_idx, a_idx), 1.0 - outcome)
    games = wins + wins.T

    def objective(theta: np.ndarray) -> float:
        diff = theta[:, None] - theta[None, :]
        return float(-(wins * -np.logaddexp(0.0, -diff)).sum() + 0.5 * ridge * theta @ theta)

    theta = np.zeros(n)
    value = objective(theta)
    for _ in range(200):
        diff = theta[:, None] - theta[None, :]
        p = 1.0 / (1.0 + np.exp(-diff))
        gradient = -(wins - games * p).sum(axis=1) + ridge * theta
        weights = games * p * (1.0 - p)
        hessian = np.diag(weights.sum(axis=1)) - weights + ridge * np.eye(n)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while True:  # backtracking keeps Newton monotone on near-separable data
            candidate = theta - size * step
            new_value = objective(candidate)
            if new_value <= value or size < 1e-8:
                break
            size /= 2
        if new_value > value:
            break
        theta, improvement, value = candidate, value - new_value, new_value
        if np.abs(size * step).max() < 1e-10 or improvement < 1e-14:
            break
    theta -= theta.mean()
    ratings = initial + scale * theta / _LN10
    return dict(zip(names, ratings.tolist(), strict=True))


def online_elo_runs(
    battles: Sequence[Battle],
    orders: np.ndarray,
    k: float = 40.0,
    initial: float = 1000.0,
) -> tuple[list[str], np.ndarray]:
    """Online Elo (eq. 3-4) once per row of `orders` (runs x battles, each a permutation of
    the battle indices): the sorted names and the final ratings (runs x names)."""
    names, a_idx, b_idx, outcome = _encode(battles)
    orders = np.asarray(orders, dtype=np.int64).reshape(-1, len(battles))
    if len(orders) == 0:
        return names, np.empty((0, len(names)))
    batch = max(1, 4_000_000 // max(1, len(battles)))  # bounds the (batch, T) index arrays
    runs = [_elo_runs(a_idx, b_idx, outcome, len(names), orders[start:start + batch], k,
                      initial) for start in range(0, len(orders), batch)]
    return names, np.concatenate(runs)


def bootstrap_samples(
    battles: Sequence[Battle],
    rating_fn: RatingFn,
    rounds: int = 200,
    seed: int = 0,
) -> list[dict[str, float]]:
    """`rating_fn` on `rounds` resamples of the battles drawn with replacement from `seed`
    (a resample is in random draw order); a competitor missing from a resample is absent."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(rounds):
        picks = rng.integers(0, len(battles), size=len(battles))
        results.append(dict(rating_fn([battles[i] for i in picks])))
    return results


def bootstrap_elo_samples(
    battles: Sequence[Battle],
    rounds: int = 200,
    seed: int = 0,
    k: float = 40.0,
    initial: float = 1000.0,
    permutations: int | None = None,
    permutation_seed: int = 0,
) -> list[dict[str, float]]:
    """`bootstrap_samples` of online Elo (`permutations=None`) or of `permutation_elo` with
    `permutations` orders from `permutation_seed`, with the same resamples, computed for all
    resamples at once (vectorised over runs instead of one Python loop per resample)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    names, a_idx, b_idx, outcome = _encode(battles)
    n = len(battles)
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.integers(0, n, size=n) for _ in range(rounds)])
    if permutations is None:
        perms = np.arange(n)[None, :]
    else:
        order_rng = np.random.default_rng(permutation_seed)
        perms = np.stack([order_rng.permutation(n) for _ in range(permutations)])
    per_round = len(perms)
    totals = np.zeros((rounds, len(names)))
    batch = max(1, 8_000_000 // max(1, n) // per_round)  # resamples per (batch x T) block
    for start in range(0, rounds, batch):
        block = picks[start:start + batch]
        orders = block[:, None, :][:, np.zeros(per_round, dtype=np.int64), :]
        orders = np.take_along_axis(orders, np.broadcast_to(perms, orders.shape), axis=2)
        runs = _elo_runs(a_idx, b_idx, outcome, len(names), orders.reshape(-1, n), k, initial)
        totals[start:start + len(block)] = runs.reshape(len(block), per_round, -1).mean(axis=1)
    present = np.zeros((rounds, len(names)), dtype=bool)
    for column in (a_idx, b_idx):
        present[np.arange(rounds)[:, None], column[picks]] = True
    return [{name: float(totals[r, i]) for i, name in enumerate(names) if present[r, i]}
            for r in range(rounds)]


def percentile_intervals(
    resampled: Iterable[Mapping[str, float]], alpha: float = 0.05
) -> dict[str, tuple[float, float]]:
    """Per competitor, the (alpha / 2, 1 - alpha / 2) quantiles of its resampled ratings."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    samples: dict[str, list[float]] = {}
    for ratings in resampled:
        for name, rating in ratings.items():
            samples.setdefault(name, []).append(rating)
    return {
        name: (
            float(np.quantile(values, alpha / 2)),
            float(np.quantile(values, 1 - alpha / 2)),
        )
        for name, values in sorted(samples.items())
    }


def bootstrap_intervals(
    battles: Sequence[Battle],
    rating_fn: RatingFn,
    rounds: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap (1 - alpha) intervals of `rating_fn` over battles resampled with
    replacement (`rounds` resamples from `seed`; a resample is in random draw order).

    A competitor missing from a resample is left out of that round.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    return percentile_intervals(bootstrap_samples(battles, rating_fn, rounds, seed), alpha)


@dataclass(frozen=True)
class InstructionBattle:
    """One battle on an instruction: both candidates and their local scores (eq. 2)."""

    a: str
    b: str
    local_a: float
    local_b: float


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's parts of eq. 5 on one instruction, reduced over its battles."""

    local: float
    """Local score x (eq. 2)."""
    expected: float
    """Elo expectation X (eq. 3) from the global ratings."""
    final: float
    """alpha * expected + (1 - alpha) * local (eq. 5)."""
    battles: int


def final_scores(
    battles: Sequence[InstructionBattle],
    ratings: Mapping[str, float],
    alpha: float = 0.7,
    reduce: Literal["mean", "sum"] = "mean",
) -> dict[str, CandidateScore]:
    """Eq. 5 for every candidate of one instruction.

    `e_A = sum over A's opponents B of alpha * X_{A>B} + (1 - alpha) * x_{A>B}`. With
    `reduce="sum"` this is the paper's sum; the default `"mean"` divides by the number of
    battles the candidate fought, which equals the sum in the paper's pairwise setting (one
    battle each) and keeps an attacker with several defenders comparable to each defender.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    parts: dict[str, list[tuple[float, float]]] = {}
    for position, battle in enumerate(battles):
        if battle.a == battle.b:
            raise ValueError(f"battle {position}: {battle.a!r} cannot battle itself")
        for name in (battle.a, battle.b):
            if name not in ratings:
                raise KeyError(f"battle {position}: no rating for {name!r}; rate every competitor")
        for local in (battle.local_a, battle.local_b):
            if not 0.0 <= local <= 1.0:
                raise ValueError(f"battle {position}: local score {local} must be in [0, 1]")
        r_a, r_b = ratings[battle.a], ratings[battle.b]
        parts.setdefault(battle.a, []).append((battle.local_a, expected_score(r_a, r_b)))
        parts.setdefault(battle.b, []).append((battle.local_b, expected_score(r_b, r_a)))
    scores = {}
    for name, values in parts.items():
        local = sum(x for x, _ in values)
        expected = sum(big_x for _, big_x in values)
        if reduce == "mean":
            local, expected = local / len(values), expected / len(values)
        final = alpha * expected + (1.0 - alpha) * local
        scores[name] = CandidateScore(local, expected, final, len(values))
    return scores


def select_best(
    scores: Mapping[str, float | CandidateScore],
    ratings: Mapping[str, float] | None = None,
    tolerance: float = 1e-12,
) -> str:
    """The candidate with the highest final score.

    Scores within `tolerance` of the best count as tied; a tie goes to the higher global
    rating (when `ratings` is given), then to the alphabetically first name.
    """
    if not scores:
        raise ValueError("select_best needs at least one candidate")
    finals = {
        name: value.final if isinstance(value, CandidateScore) else float(value)
        for name, value in scores.items()
    }
    best = max(finals.values())
    tied = [name for name, value in finals.items() if value >= best - tolerance]
    rating = ratings or {}
    return min(tied, key=lambda name: (-rating.get(name, 0.0), name))
