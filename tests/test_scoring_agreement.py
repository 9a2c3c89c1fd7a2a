import math

import numpy as np
import pytest

from warriorcoder.scoring.agreement import (
    category_counts,
    fleiss_kappa,
    position_bias,
    win_rate_matrix,
)

# Fleiss (1971) worked example as given on Wikipedia: 10 items, 14 raters, 5 categories.
WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example():
    # P-bar = 0.378, P_e = 0.213 -> kappa = (0.378 - 0.213) / (1 - 0.213) = 0.210
    assert fleiss_kappa(WIKIPEDIA) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_unequal_raters_by_hand():
    table = [[2, 0], [1, 1], [0, 3], [1, 0]]  # the last item has one rating: left out
    # P_1 = 2*1 / (2*1) = 1, P_2 = 0, P_3 = 3*2 / (3*2) = 1 -> P-bar = 2/3
    # p = (3/7, 4/7) -> P_e = 9/49 + 16/49 = 25/49
    # kappa = (2/3 - 25/49) / (1 - 25/49) = 23/72
    assert fleiss_kappa(table) == pytest.approx(23 / 72)


def test_fleiss_kappa_edges():
    assert fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # one category only: undefined
    assert math.isnan(fleiss_kappa([[1, 0]]))
    with pytest.raises(ValueError, match="2-D"):
        fleiss_kappa([1, 2, 3])


def test_category_counts():
    table = category_counts(
        [["Good", "Good", None], ["Poor", "Excellent"]], ["Excellent", "Good", "Poor"]
    )
    assert table.tolist() == [[0, 2, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match="item 0: rating 'Meh'"):
        category_counts([["Meh"]], ["Good"])


def test_position_bias_and_flip_rate():
    judges, battles, verdicts, attacker_first = [], [], [], []

    def vote(judge, battle, verdict, a_first):
        judges.append(judge)
        battles.append(battle)
        verdicts.append(verdict)
        attacker_first.append(a_first)

    for battle in range(4):
        # "biased" always picks the first answer, so its winner flips with the order.
        vote("biased", battle, "A", True)
        vote("biased", battle, "A", False)
        # "fair" always picks the attacker, wherever it is shown.
        vote("fair", battle, "A", True)
        vote("fair", battle, "B", False)
    vote("fair", 9, "Tie", True)
    vote("fair", 10, None, True)
    stats = position_bias(judges, battles, verdicts, attacker_first)
    assert stats["biased"].first_share == 1.0
    assert stats["biased"].flip_rate == 1.0
    assert stats["biased"].pairs == 4
    assert stats["fair"].first_share == 0.5
    assert stats["fair"].flip_rate == 0.0
    assert stats["fair"].decided == 8
    assert stats["fair"].ties == 1
    one_order = position_bias(["j"], [1], ["B"], [True])
    assert one_order["j"].flip_rate is None
    assert one_order["j"].first_share == 0.0


def test_win_rate_matrix():
    battles = [("a", "b", 1.0), ("b", "a", 0.5), ("a", "b", 1.0)]
    rates = win_rate_matrix(battles, ["a", "b", "c"])
    # a vs b: 1 + 0.5 + 1 = 2.5 of 3 battles; b: 0 + 0.5 + 0 = 0.5 of 3
    assert rates[0, 1] == pytest.approx(2.5 / 3)
    assert rates[1, 0] == pytest.approx(0.5 / 3)
    assert np.isnan(rates[0, 2]) and np.isnan(rates[0, 0])
    with pytest.raises(ValueError, match="battle 0"):
        win_rate_matrix([("a", "z", 1.0)], ["a", "b"])


def test_position_bias_test_exact_binomial():
    from warriorcoder.scoring.agreement import position_bias_test

    # 60 first-shown picks of 100: two-sided exact p = 2 x P(X >= 60 | n=100, p=0.5) = 0.0569
    borderline = position_bias_test(60, 100, confidence=0.95)
    assert borderline.p_value == pytest.approx(0.05689, abs=1e-5)
    assert not borderline.flagged and borderline.low < 0.5 < borderline.high
    # 8 of 8: p = 2 x 0.5 ** 8 = 0.0078 -> flagged; it follows the content in none of them
    always = position_bias_test(8, 8)
    assert always.p_value == pytest.approx(2 * 0.5**8)
    assert always.flagged and always.content_share == 0.0
    # share 0.8: if the content decides the rest, 2 x (1 - 0.8) = 0.4 of its verdicts follow it
    assert position_bias_test(80, 100).content_share == pytest.approx(0.4)
    assert not position_bias_test(0, 0).flagged
    with pytest.raises(ValueError, match="first <= decided"):
        position_bias_test(5, 3)
