"""Paper section 3.3, eq. 2-5, worked by hand on a three-battle log and checked against the
library's tally, online Elo and target choice (K = 40, initial 1000, alpha = 0.7).

The log (three judges per battle):

    b1  i1  attacker A vs defender B   votes: A, A, Tie          (a Tie vote)
    b2  i2  attacker B vs defender C   votes: B, C, C            (a split vote, 1-2)
    b3  i3  attacker C vs defender A   votes: C, A, Tie          (a draw, 1.5-1.5)
"""

from __future__ import annotations

import pytest

from warriorcoder.scoring.elo import online_elo
from warriorcoder.scoring.standings import Ratings, choose_targets
from warriorcoder.scoring.tally import tally_battles

LOG = [
    ("b1", "i1", "A", "B", ["attacker", "attacker", "tie"]),
    ("b2", "i2", "B", "C", ["attacker", "defender", "defender"]),
    ("b3", "i3", "C", "A", ["attacker", "defender", "tie"]),
]


def _votes() -> dict[str, list]:
    rows = [{"battle_id": b, "instruction_id": i, "attacker": a, "defender": d,
             "judge": f"j{n}", "winner": w}
            for b, i, a, d, winners in LOG for n, w in enumerate(winners)]
    return {key: [row[key] for row in rows] for key in rows[0]}


def x(r_a: float, r_b: float) -> float:
    """Eq. 3 written out: 1 / (1 + 10 ** ((R_B - R_A) / 400))."""
    return 1 / (1 + 10 ** ((r_b - r_a) / 400))


def test_eq2_local_scores_and_majority_outcomes_by_hand() -> None:
    b1, b2, b3 = tally_battles(_votes())
    # b1: t_A = 1 + 1 + 0.5 (the Tie gives each side half) = 2.5, t_B = 0.5
    #     eq. 2: x_A = 2.5 / (2.5 + 0.5) = 0.8333, x_B = 0.5 / 3 = 0.1667; A wins (2.5 > 0.5)
    assert (b1.t_attacker, b1.t_defender) == (2.5, 0.5)
    assert b1.local == pytest.approx((2.5 / 3, 0.5 / 3))
    assert b1.outcome == 1.0
    # b2: t_B = 1, t_C = 2 -> x_B = 1 / 3, x_C = 2 / 3; the majority makes C the winner
    assert (b2.t_attacker, b2.t_defender) == (1.0, 2.0)
    assert b2.local == pytest.approx((1 / 3, 2 / 3))
    assert b2.outcome == 0.0
    # b3: t_C = 1 + 0.5 = 1.5, t_A = 1 + 0.5 = 1.5 -> x = 0.5 each; a draw (s = 0.5)
    assert (b3.t_attacker, b3.t_defender) == (1.5, 1.5)
    assert b3.local == (0.5, 0.5)
    assert b3.outcome == 0.5


def test_eq3_4_online_elo_and_eq5_targets_by_hand() -> None:
    tallies = tally_battles(_votes())
    ratings = online_elo([t.as_battle() for t in tallies], k=40, initial=1000)  # in log order
    # b1 (A beats B): X_A = 1 / (1 + 10 ** 0) = 0.5
    #     R_A = 1000 + 40 x (1 - 0.5) = 1020, R_B = 1000 - 20 = 980
    a, b, c = 1000 + 40 * (1 - 0.5), 1000 - 40 * (1 - 0.5), 1000.0
    assert (a, b) == (1020.0, 980.0)
    # b2 (C beats B): X_B = 1 / (1 + 10 ** ((1000 - 980) / 400)) = 1 / (1 + 10 ** 0.05)
    #     = 1 / 2.1220185 = 0.4712494; R_B = 980 + 40 x (0 - 0.4712494) = 961.1500226,
    #     R_C = 1000 + 18.8499774 = 1018.8499774
    x_b = 1 / (1 + 10 ** 0.05)
    assert x_b == pytest.approx(0.4712494, abs=1e-7)
    b, c = b + 40 * (0 - x_b), c - 40 * (0 - x_b)
    assert (b, c) == pytest.approx((961.1500226, 1018.8499774), abs=1e-6)
    # b3 (C draws A): X_C = 1 / (1 + 10 ** ((1020 - 1018.8499774) / 400)) = 0.4983450
    #     R_C = 1018.8499774 + 40 x (0.5 - 0.4983450) = 1018.9161778, R_A = 1019.9337996
    x_c = 1 / (1 + 10 ** ((a - c) / 400))
    assert x_c == pytest.approx(0.4983450, abs=1e-7)
    c, a = c + 40 * (0.5 - x_c), a - 40 * (0.5 - x_c)
    assert (a, b, c) == pytest.approx((1019.9337996, 961.1500226, 1018.9161778), abs=1e-6)
    assert ratings == pytest.approx({"A": a, "B": b, "C": c}, abs=1e-9)

    chosen = Ratings(values={"online": ratings}, intervals={}, method="online", order_seed=0,
                     judged_battles=3)
    targets = {t.instruction_id: t for t in choose_targets(tallies, chosen, alpha=0.7)}
    # eq. 5, e = 0.7 x X + 0.3 x x (one battle per candidate: the paper's sum is the mean)
    # i1: X_A = 1 / (1 + 10 ** ((961.15 - 1019.93) / 400)) = 0.5837986
    #     e_A = 0.7 x 0.5837986 + 0.3 x 0.8333333 = 0.6586590; e_B = 0.7 x 0.4162014 + 0.05
    #     = 0.3413410 -> A's answer is the target
    i1 = targets["i1"].scores
    assert i1["A"].expected == pytest.approx(x(a, b)) == pytest.approx(0.5837986, abs=1e-7)
    assert i1["A"].final == pytest.approx(0.7 * x(a, b) + 0.3 * 2.5 / 3)
    assert i1["A"].final == pytest.approx(0.6586590, abs=1e-7)
    assert i1["B"].final == pytest.approx(0.3413410, abs=1e-7)
    assert targets["i1"].winner == "A"
    # i2 (the split): X_B = 1 / (1 + 10 ** ((1018.92 - 961.15) / 400)) = 0.4176255
    #     e_B = 0.7 x 0.4176255 + 0.3 x 1/3 = 0.3923378; e_C = 0.7 x 0.5823745 + 0.2 = 0.6076622
    i2 = targets["i2"].scores
    assert i2["B"].final == pytest.approx(0.7 * x(b, c) + 0.3 / 3)
    assert (i2["B"].final, i2["C"].final) == pytest.approx((0.3923378, 0.6076622), abs=1e-7)
    assert targets["i2"].winner == "C"
    # i3 (the draw): equal vote shares, so Elo decides: X_C = 0.4985355 against A
    #     e_C = 0.7 x 0.4985355 + 0.3 x 0.5 = 0.4989749 < e_A = 0.5010251 -> A, by 0.002
    i3 = targets["i3"].scores
    assert i3["C"].final == pytest.approx(0.7 * x(c, a) + 0.15)
    assert (i3["C"].final, i3["A"].final) == pytest.approx((0.4989749, 0.5010251), abs=1e-7)
    assert targets["i3"].winner == "A"
