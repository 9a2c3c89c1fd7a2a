"""The defender schedule of the `battle` phase (paper appendix C, offensive-defence balance).

Each instruction's miner is its attacker; `schedule_defenders` picks its defenders so that
every expert defends as often as it attacks (the attack counts are fixed by who mined what)
and every ordered (attacker, defender) pair meets about equally often. The pair counts are the
solution of two small integer programs over the n x n pair matrix (scipy's HiGHS), so the cost
does not grow with the number of instructions:

1. defence counts: as close to the attack counts as the data allow (exactly equal whenever no
   expert mined more than N / (b + 1) of the N instructions, b = battles per instruction);
2. pair counts: with those margins, the smallest spread of each attacker's battles over its
   opponents and of each defender's battles over its attackers.

Which instruction meets which scheduled defender is then a seeded shuffle: the whole schedule
is a deterministic function of (attackers, experts, battles per instruction, seed).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from warriorcoder.scoring.seeds import derive_seed

_TIME_LIMIT_S = 30.0


@dataclass(frozen=True)
class Schedule:
    """Defenders per instruction (in input order) and the counts they add up to."""

    experts: tuple[str, ...]
    attackers: tuple[str, ...]
    defenders: tuple[tuple[str, ...], ...]
    battles_per_instruction: int
    seed: int

    def attacks(self) -> dict[str, int]:
        """Battles each expert fights as attacker."""
        counts = Counter(a for a, ds in zip(self.attackers, self.defenders, strict=True)
                         for _ in ds)
        return {e: counts[e] for e in self.experts}

    def defences(self) -> dict[str, int]:
        """Battles each expert fights as defender."""
        counts = Counter(d for ds in self.defenders for d in ds)
        return {e: counts[e] for e in self.experts}

    def deviation(self) -> dict[str, int]:
        """Defences minus attacks per expert (0 is perfect balance)."""
        attacks, defences = self.attacks(), self.defences()
        return {e: defences[e] - attacks[e] for e in self.experts}

    @property
    def balanced(self) -> bool:
        """Whether every expert's attack and defence counts differ by at most one."""
        return all(abs(d) <= 1 for d in self.deviation().values())

    def pairs(self) -> dict[tuple[str, str], int]:
        """Battles per ordered (attacker, defender) pair, every pair of distinct experts."""
        counts = Counter((a, d) for a, ds in zip(self.attackers, self.defenders, strict=True)
                         for d in ds)
        return {(a, d): counts[(a, d)] for a in self.experts for d in self.experts if a != d}

    def shortfalls(self) -> dict[str, str]:
        """Why an expert cannot defend as often as it attacks, for each expert that cannot."""
        total = len(self.attackers)
        mined = Counter(self.attackers)
        b = self.battles_per_instruction
        reasons = {}
        for expert in self.experts:
            if b * mined[expert] > total - mined[expert]:
                reasons[expert] = (
                    f"mined {mined[expert]} of {total} instructions (more than "
                    f"{total / (b + 1):.1f} = N / (battles_per_instruction + 1)); it can defend "
                    f"only the other {total - mined[expert]} instructions, once each, but "
                    f"attacks {b * mined[expert]} times"
                )
        return reasons


def schedule_defenders(
    attackers: Sequence[str],
    experts: Sequence[str],
    battles_per_instruction: int = 1,
    seed: int = 0,
) -> Schedule:
    """Pick `battles_per_instruction` distinct defenders (never the attacker) per instruction.

    `attackers[i]` is the miner of instruction i. Raises ValueError on an unknown attacker or
    when there are not enough other experts to defend.
    """
    experts = tuple(experts)
    if len(set(experts)) != len(experts):
        raise ValueError(f"expert names repeat: {list(experts)}")
    b = battles_per_instruction
    if b < 1:
        raise ValueError(f"battles_per_instruction must be at least 1, got {b}")
    if b > len(experts) - 1:
        raise ValueError(
            f"battles_per_instruction={b} needs at least {b + 1} experts (distinct defenders "
            f"besides the attacker); there are {len(experts)}"
        )
    index = {name: i for i, name in enumerate(experts)}
    for position, attacker in enumerate(attackers):
        if attacker not in index:
            raise ValueError(
                f"instruction {position}: attacker {attacker!r} is not one of the experts "
                f"{list(experts)}"
            )
    counts = Counter(attackers)
    mined = np.array([counts[e] for e in experts], dtype=np.int64)
    matrix = pair_matrix(mined, b)
    defenders = _assign(list(attackers), experts, matrix, seed)
    return Schedule(experts, tuple(attackers), defenders, b, seed)


def pair_matrix(mined: np.ndarray, battles_per_instruction: int) -> np.ndarray:
    """Battles per (attacker, defender) as an integer matrix, from instructions mined per expert.

    Row x sums to b * mined[x]; entry (x, y) is at most mined[x] (a defender meets each
    instruction once); the diagonal is 0. See the module doc for the two objectives.
    """
    n = len(mined)
    b = battles_per_instruction
    if mined.sum() == 0:
        return np.zeros((n, n), dtype=np.int64)
    defences = _defence_counts(mined, b)
    return _even_pairs(mined, b, defences)


def _cells(n: int) -> list[tuple[int, int]]:
    return [(x, y) for x in range(n) for y in range(n) if x != y]


def _solve(cost: np.ndarray, rows: list[np.ndarray], lower: list[float], upper: list[float],
           var_upper: np.ndarray, integer: np.ndarray) -> np.ndarray:
    result = milp(
        cost,
        constraints=LinearConstraint(np.array(rows), np.array(lower), np.array(upper)),
        integrality=integer,
        bounds=Bounds(np.zeros(len(cost)), var_upper),
        options={"time_limit": _TIME_LIMIT_S},
    )
    if result.x is None:  # pragma: no cover - both programs are always feasible
        raise RuntimeError(f"defender schedule: the solver found no schedule ({result.message})")
    return result.x


def _defence_counts(mined: np.ndarray, b: int) -> np.ndarray:
    """Defence counts closest to the attack counts: least largest excess and largest shortfall,
    then least total deviation."""
    n = len(mined)
    cells = _cells(n)
    m = len(cells)
    over, under, max_over, max_under = m, m + n, m + 2 * n, m + 2 * n + 1
    size = m + 2 * n + 2
    rows, lower, upper = [], [], []
    for x in range(n):
        row = np.zeros(size)
        row[[k for k, (a, _) in enumerate(cells) if a == x]] = 1
        rows.append(row)
        lower.append(b * mined[x])
        upper.append(b * mined[x])
    for y in range(n):
        row = np.zeros(size)
        row[[k for k, (_, d) in enumerate(cells) if d == y]] = 1
        row[over + y], row[under + y] = -1, 1
        rows.append(row)
        lower.append(b * mined[y])
        upper.append(b * mined[y])
        for slack, bound in ((over + y, max_over), (under + y, max_under)):
            row = np.zeros(size)
            row[slack], row[bound] = 1, -1
            rows.append(row)
            lower.append(-np.inf)
            upper.append(0)
    weight = 2 * b * int(mined.sum()) + 1  # the maxima first, then the total deviation
    cost = np.zeros(size)
    cost[over:max_over] = 1
    cost[[max_over, max_under]] = weight
    var_upper = np.full(size, np.inf)
    var_upper[:m] = [mined[a] for a, _ in cells]
    x = _solve(cost, rows, lower, upper, var_upper, np.ones(size))
    pairs = np.rint(x[:m]).astype(np.int64)
    defences = np.zeros(n, dtype=np.int64)
    for (_, d), value in zip(cells, pairs, strict=True):
        defences[d] += value
    return defences


def _even_pairs(mined: np.ndarray, b: int, defences: np.ndarray) -> np.ndarray:
    """The pair matrix with the given margins and the least spread within rows and columns."""
    n = len(mined)
    cells = _cells(n)
    m = len(cells)
    active_rows = [x for x in range(n) if mined[x] > 0]
    active_cols = [y for y in range(n) if defences[y] > 0]
    # Variables: the cells, then (high, low) per active row, then per active column.
    row_var = {x: m + 2 * i for i, x in enumerate(active_rows)}
    col_var = {y: m + 2 * len(active_rows) + 2 * i for i, y in enumerate(active_cols)}
    size = m + 2 * (len(active_rows) + len(active_cols))
    rows, lower, upper = [], [], []

    def add(coefficients: dict[int, float], lo: float, hi: float) -> None:
        row = np.zeros(size)
        for k, value in coefficients.items():
            row[k] += value
        rows.append(row)
        lower.append(lo)
        upper.append(hi)

    for x in range(n):
        add({k: 1 for k, (a, _) in enumerate(cells) if a == x}, b * mined[x], b * mined[x])
    for y in range(n):
        add({k: 1 for k, (_, d) in enumerate(cells) if d == y}, defences[y], defences[y])
    for k, (a, d) in enumerate(cells):
        if a in row_var and d in col_var:
            high, low = row_var[a], row_var[a] + 1
            add({k: 1, high: -1}, -np.inf, 0)
            add({k: 1, low: -1}, 0, np.inf)
            high, low = col_var[d], col_var[d] + 1
            add({k: 1, high: -1}, -np.inf, 0)
            add({k: 1, low: -1}, 0, np.inf)
    cost = np.zeros(size)
    for first in (*row_var.values(), *col_var.values()):
        cost[first], cost[first + 1] = 1, -1
    var_upper = np.full(size, np.inf)
    var_upper[:m] = [mined[a] for a, _ in cells]
    integer = np.zeros(size)
    integer[:m] = 1
    x = _solve(cost, rows, lower, upper, var_upper, integer)
    matrix = np.zeros((n, n), dtype=np.int64)
    for (a, d), value in zip(cells, np.rint(x[:m]).astype(np.int64), strict=True):
        matrix[a, d] = value
    return matrix


def _assign(
    attackers: list[str], experts: tuple[str, ...], matrix: np.ndarray, seed: int
) -> tuple[tuple[str, ...], ...]:
    """Deal each attacker's scheduled defenders to its instructions in a seeded order.

    Defender names are laid out in runs (each run at most as long as the attacker's number of
    instructions) and dealt round-robin, so no instruction gets the same defender twice.
    """
    by_attacker: dict[str, list[int]] = {}
    for position, attacker in enumerate(attackers):
        by_attacker.setdefault(attacker, []).append(position)
    assigned: list[list[str]] = [[] for _ in attackers]
    for x, attacker in enumerate(experts):
        positions = by_attacker.get(attacker, [])
        if not positions:
            continue
        rng = random.Random(derive_seed("schedule", seed, attacker))
        order = positions[:]
        rng.shuffle(order)
        opponents = [y for y in range(len(experts)) if y != x]
        rng.shuffle(opponents)
        labels = [experts[y] for y in opponents for _ in range(int(matrix[x, y]))]
        for slot, name in enumerate(labels):
            assigned[order[slot % len(order)]].append(name)
    return tuple(tuple(names) for names in assigned)
