import functools
import math

import numpy as np
import pytest

from warriorcoder.scoring.elo import (
    CandidateScore,
    InstructionBattle,
    battle_outcome,
    bootstrap_intervals,
    bradley_terry,
    expected_score,
    final_scores,
    local_scores,
    online_elo,
    permutation_elo,
    select_best,
    vote_totals,
)


def test_expected_score_eq3():
    # X_A = 1 / (1 + 10 ** ((1000 - 1100) / 400)) = 1 / (1 + 10 ** -0.25) = 1 / 1.5623413
    assert expected_score(1100, 1000) == pytest.approx(0.6400650, abs=1e-7)
    assert expected_score(1000, 1100) == pytest.approx(1 - 0.6400650, abs=1e-7)
    assert expected_score(1234, 1234) == 0.5


def test_local_scores_eq2_with_ties_as_half_votes():
    # votes: attacker, tie, defender, attacker, invalid -> t_A = 1 + 0.5 + 1 = 2.5, t_B = 1.5
    t_a, t_b = vote_totals(["attacker", "tie", "defender", "attacker", "invalid"])
    assert (t_a, t_b) == (2.5, 1.5)
    # x_A = 2.5 / (2.5 + 1.5) = 0.625, x_B = 1.5 / 4 = 0.375
    assert local_scores(t_a, t_b) == (0.625, 0.375)
    assert local_scores(2, 1) == pytest.approx((2 / 3, 1 / 3))
    assert local_scores(0, 0) == (0.5, 0.5)  # no valid vote: undecided


def test_vote_totals_rejects_unknown_winner():
    with pytest.raises(ValueError, match="vote 1: unknown winner 'A'"):
        vote_totals(["tie", "A"])


@pytest.mark.parametrize(
    ("votes", "outcome"), [((2, 1), 1.0), ((1, 2), 0.0), ((1.5, 1.5), 0.5), ((0, 0), 0.5)]
)
def test_battle_outcome_is_the_majority(votes, outcome):
    assert battle_outcome(*votes) == outcome


def test_online_elo_eq4_by_hand():
    battles = [("a", "b", 1.0), ("a", "b", 0.5), ("b", "c", 1.0)]
    # 1: X_a = 0.5; a = 1000 + 40 * (1 - 0.5) = 1020, b = 1000 - 20 = 980
    # 2: X_a = 1 / (1 + 10 ** ((980 - 1020) / 400)) = 1 / (1 + 10 ** -0.1) = 0.5573116
    #    a = 1020 + 40 * (0.5 - 0.5573116) = 1017.707536, b = 982.292464
    # 3: X_b = 1 / (1 + 10 ** ((1000 - 982.292464) / 400)) = 0.4745388
    #    b = 982.292464 + 40 * (1 - 0.4745388) = 1003.310910, c = 1000 - 21.018446 = 978.981554
    ratings = online_elo(battles, k=40, initial=1000)
    assert ratings == pytest.approx({"a": 1017.707536, "b": 1003.310910, "c": 978.981554}, abs=1e-5)
    assert sum(ratings.values()) == pytest.approx(3000)


def test_online_elo_follows_the_given_order():
    battles = [("a", "b", 1.0), ("b", "a", 1.0)]
    # a wins first: a = 1020, then X_b = 1 / (1 + 10 ** (40 / 400)) = 0.4426884,
    # b = 980 + 40 * 0.5573116 = 1002.292464
    assert online_elo(battles)["b"] == pytest.approx(1002.292464, abs=1e-5)
    # b wins first, then a wins: the mirror image
    assert online_elo(battles, order=[1, 0])["a"] == pytest.approx(1002.292464, abs=1e-5)
    with pytest.raises(ValueError, match="permutation"):
        online_elo(battles, order=[0, 0])


def test_online_elo_rejects_bad_battles():
    with pytest.raises(ValueError, match="battle 1: 'a' cannot battle itself"):
        online_elo([("a", "b", 1.0), ("a", "a", 1.0)])
    with pytest.raises(ValueError, match=r"battle 0: outcome 2 must be in \[0, 1\]"):
        online_elo([("a", "b", 2)])


def _simulate(strengths: dict[str, float], count: int, seed: int) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(seed)
    names = list(strengths)
    battles = []
    for _ in range(count):
        a, b = rng.choice(names, size=2, replace=False)
        p = expected_score(strengths[a], strengths[b])
        draw = rng.random()
        battles.append((str(a), str(b), 1.0 if draw < p * 0.9 else 0.5 if draw < p else 0.0))
    return battles


def test_permutation_elo_is_the_mean_of_online_elo_over_its_orders():
    battles = _simulate({"a": 0, "b": 50, "c": 100, "d": 150}, 300, seed=1)
    rng = np.random.default_rng(7)
    orders = [rng.permutation(len(battles)) for _ in range(5)]
    runs = [online_elo(battles, order=order) for order in orders]
    expected = {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}
    assert permutation_elo(battles, permutations=5, seed=7) == pytest.approx(expected, abs=1e-9)


def test_bradley_terry_by_hand():
    # a beats b 3 times out of 4: p = 0.75 -> R_a - R_b = 400 * log10(0.75 / 0.25) = 190.85
    battles = [("a", "b", 1.0)] * 3 + [("b", "a", 1.0)]
    ratings = bradley_terry(battles)
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(3), abs=0.05)
    assert (ratings["a"] + ratings["b"]) / 2 == pytest.approx(1000)
    # one win and two draws: a scores 2 of 3 -> R_a - R_b = 400 * log10(2)
    ratings = bradley_terry([("a", "b", 1.0), ("a", "b", 0.5), ("b", "a", 0.5)])
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(2), abs=0.05)


def test_bradley_terry_stays_finite_when_one_side_always_wins():
    ratings = bradley_terry([("a", "b", 1.0)] * 10)
    assert all(math.isfinite(r) for r in ratings.values())
    assert ratings["a"] > ratings["b"] + 400


def test_ratings_recover_planted_strengths():
    strengths = {"e1": 0.0, "e2": 120.0, "e3": 240.0, "e4": 360.0, "e5": 480.0}
    battles = _simulate(strengths, 2000, seed=3)
    truth = sorted(strengths, key=strengths.get)
    bt = bradley_terry(battles)
    assert sorted(bt, key=bt.get) == truth
    spread = bt["e5"] - bt["e1"]
    assert spread == pytest.approx(480, rel=0.2)
    perm = permutation_elo(battles, permutations=20, seed=0)
    assert sorted(perm, key=perm.get) == truth


def test_bootstrap_intervals_contain_the_estimate():
    battles = _simulate({"a": 0.0, "b": 100.0, "c": 200.0}, 600, seed=5)
    point = bradley_terry(battles)
    intervals = bootstrap_intervals(battles, bradley_terry, rounds=100, seed=0)
    for name, (low, high) in intervals.items():
        assert low < point[name] < high
        assert high - low < 150
    again = bootstrap_intervals(battles, bradley_terry, rounds=100, seed=0)
    assert again == intervals
    online = bootstrap_intervals(battles, functools.partial(online_elo, k=16), rounds=50, seed=1)
    assert online["a"][1] < online["c"][0]  # a clear gap is resolved


def test_final_scores_eq5_by_hand():
    ratings = {"atk": 1100.0, "def": 1000.0}
    battle = InstructionBattle("atk", "def", local_a=2 / 3, local_b=1 / 3)
    scores = final_scores([battle], ratings, alpha=0.7)
    # e_atk = 0.7 * X(1100 vs 1000) + 0.3 * 2/3 = 0.7 * 0.6400650 + 0.2 = 0.6480455
    # e_def = 0.7 * 0.3599350 + 0.3 * 1/3 = 0.2519545 + 0.1 = 0.3519545
    assert scores["atk"].final == pytest.approx(0.6480455, abs=1e-7)
    assert scores["def"].final == pytest.approx(0.3519545, abs=1e-7)
    assert scores["atk"].expected == pytest.approx(0.6400650, abs=1e-7)
    assert scores["def"].local == pytest.approx(1 / 3)
    assert select_best(scores) == "atk"


def test_final_scores_with_several_defenders():
    ratings = {"a": 1000.0, "b": 1000.0, "c": 1000.0}
    battles = [InstructionBattle("a", "b", 0.5, 0.5), InstructionBattle("a", "c", 0.0, 1.0)]
    # a: two battles, 0.7 * 0.5 + 0.3 * 0.5 = 0.5 and 0.7 * 0.5 + 0.3 * 0 = 0.35
    summed = final_scores(battles, ratings, reduce="sum")
    assert summed["a"].final == pytest.approx(0.85)  # the paper's sum over opponents
    mean = final_scores(battles, ratings)
    assert mean["a"].final == pytest.approx(0.425)
    assert mean["a"].battles == 2
    # c: 0.7 * 0.5 + 0.3 * 1 = 0.65 beats a's mean, while a's sum would win only by count
    assert select_best(mean) == "c"
    assert select_best(summed) == "a"


def test_final_scores_errors():
    with pytest.raises(KeyError, match="no rating for 'b'"):
        final_scores([InstructionBattle("a", "b", 1.0, 0.0)], {"a": 1000.0})
    with pytest.raises(ValueError, match="local score"):
        final_scores([InstructionBattle("a", "b", 1.5, 0.0)], {"a": 1.0, "b": 1.0})


def test_select_best_tie_breaks():
    tied = {"b": 0.5, "a": 0.5, "c": 0.2}
    assert select_best(tied) == "a"  # by name
    assert select_best(tied, ratings={"a": 990.0, "b": 1010.0}) == "b"  # higher Elo first
    assert select_best({"x": CandidateScore(0.1, 0.2, 0.17, 1), "y": 0.3}) == "y"
    with pytest.raises(ValueError):
        select_best({})


def test_online_elo_runs_match_one_run_per_order_and_bootstrap_parts_agree():
    from warriorcoder.scoring.elo import bootstrap_samples, online_elo_runs, percentile_intervals

    battles = _simulate({"a": 0, "b": 50, "c": 100}, 200, seed=2)
    rng = np.random.default_rng(3)
    orders = np.stack([rng.permutation(len(battles)) for _ in range(4)])
    names, runs = online_elo_runs(battles, orders, k=40, initial=1000)
    assert names == ["a", "b", "c"]
    for order, run in zip(orders, runs, strict=True):
        assert dict(zip(names, run, strict=True)) == pytest.approx(
            online_elo(battles, order=order.tolist()), abs=1e-9)
    samples = bootstrap_samples(battles, bradley_terry, rounds=30, seed=4)
    assert percentile_intervals(samples) == bootstrap_intervals(battles, bradley_terry, 30, 4)


def test_vectorised_bootstrap_of_elo_equals_the_plain_bootstrap():
    from warriorcoder.scoring.elo import bootstrap_elo_samples, bootstrap_samples

    battles = _simulate({"a": 0, "b": 60, "c": 120, "d": 180}, 150, seed=6)
    plain = bootstrap_samples(battles, functools.partial(online_elo, k=40), rounds=6, seed=8)
    fast = bootstrap_elo_samples(battles, rounds=6, seed=8, k=40)
    assert [set(s) for s in fast] == [set(s) for s in plain]
    for p, f in zip(plain, fast, strict=True):
        assert f == pytest.approx(p, abs=1e-9)
    permuted = functools.partial(permutation_elo, permutations=3, seed=2)
    plain = bootstrap_samples(battles, permuted, rounds=4, seed=1)
    fast = bootstrap_elo_samples(battles, rounds=4, seed=1, permutations=3, permutation_seed=2)
    for p, f in zip(plain, fast, strict=True):
        assert f == pytest.approx(p, abs=1e-9)
