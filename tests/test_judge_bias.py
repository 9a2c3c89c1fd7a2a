"""Bias handling on a simulated arena: one judge picks the first-shown answer 80% of the time.

With the order shuffled per vote, such a judge votes at random with respect to quality; where
it is one of two judges its random votes turn clear wins into draws and squeeze the ratings
together. The reference is the arena the planted strengths give when that judge judges
honestly: the same prompts and seeds, its verdicts drawn by the simulation without the bias.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from tests.support.sim_battles import BattleSim, battle_arena, compressed_rows, publish_parent
from warriorcoder.builders.select import standings_options
from warriorcoder.runner import run_phase
from warriorcoder.scoring.standings import compute_ratings
from warriorcoder.scoring.tally import ATTACKER_FIRST, competitors, count_votes
from warriorcoder.scoring.verdicts import map_verdict, render_judge_prompt

NAMES = ["e0", "e1", "e2", "e3"]  # 4 experts: two judges per battle
STRENGTHS = dict(zip(NAMES, [0.9, 0.6, 0.4, 0.1], strict=True))
BIASED, BIAS = "e3", 0.8
INSTRUCTIONS = 480
COLUMNS = ["battle_id", "instruction_id", "attacker", "defender", "judge", "order", "verdict",
           "winner", "attempts"]


def _sim(bias: dict[str, float]) -> BattleSim:
    return BattleSim(STRENGTHS, accuracy=0.8, tie_rate=0.05, position_bias=bias,
                     invalid_rate=0.0, long_answer_rate=0.0)


@pytest.fixture(scope="module")
def arena_votes(tmp_path_factory):
    """The votes of one arena judged under the default policy and under `reask` (which adds
    the biased judge's re-asks; the first-pass votes come from the journal)."""
    root = tmp_path_factory.mktemp("bias")
    with battle_arena(root, _sim({BIASED: BIAS}),
                      select={"rating": "bradley_terry", "bootstrap_rounds": 5}) as arena:
        publish_parent(arena.store, "compress",
                       compressed_rows([NAMES[i % 4] for i in range(INSTRUCTIONS)]))
        run_phase("battle", arena.config, store=arena.store)
        default_ref = run_phase("judge", arena.config, store=arena.store)
        default = arena.store.load("votes", default_ref.version).to_list()
        card = arena.store.read_card("votes", default_ref.version)
        calls = sum(arena.sim.judge_calls.values())
        reask_config = arena.config.model_copy(
            update={"judge": arena.config.judge.model_copy(update={"bias_policy": "reask"})})
        reask_ref = run_phase("judge", reask_config, store=arena.store)
        reasked = arena.store.load("votes", reask_ref.version).to_list()
        new_calls = sum(arena.sim.judge_calls.values()) - calls
        yield arena, default, reasked, card, new_calls


def _columns(rows: list[dict]) -> dict[str, list]:
    return {c: [r[c] for r in rows] for c in COLUMNS}


def _ratings(arena, rows: list[dict], policy: str) -> dict[str, float]:
    votes = _columns(rows)
    count = count_votes(votes, policy, arena.config.judge.bias_confidence)
    experts = competitors(arena.config.expert_names, votes)
    return compute_ratings(count.tallies, experts, standings_options(arena.config)).chosen


def _honest(rows: list[dict]) -> list[dict]:
    """The biased judge's verdicts as the same simulation gives them without its bias."""
    honest = _sim({})
    out = []
    for row in rows:
        if row["judge"] == BIASED:
            first = row["order"] == ATTACKER_FIRST
            answers = (row["response_attacker"], row["response_defender"])
            prompt = render_judge_prompt(row["instruction"], *(answers if first
                                                               else answers[::-1]))
            verdict = honest.intended(BIASED, prompt, row["seed"])
            row = {**row, "verdict": verdict, "winner": map_verdict(verdict, first)}
        out.append(row)
    return out


def _distance(ratings: dict[str, float], truth: dict[str, float]) -> float:
    return math.sqrt(sum((ratings[e] - truth[e]) ** 2 for e in NAMES) / len(NAMES))


def test_the_biased_judge_is_flagged_in_the_votes_card(arena_votes) -> None:
    _, default, _, card, _ = arena_votes
    table = card.split("| judge |")[1].split("\n\n")[0]
    line = next(row for row in table.splitlines() if row.startswith(f"| {BIASED} |"))
    assert "**yes**" in line
    for name in set(NAMES) - {BIASED}:
        row = next(row for row in table.splitlines() if row.startswith(f"| {name} |"))
        assert "| no |" in row
    assert "`judge.bias_policy: downweight`" in card and f"Flagged: `{BIASED}`" in card
    assert not any(r["reasked"] for r in default)


def test_reask_asks_the_flagged_judge_again_with_the_answers_swapped(arena_votes) -> None:
    _, default, reasked, _, new_calls = arena_votes
    extra = [r for r in reasked if r["reasked"]]
    assert extra and {r["judge"] for r in extra} == {BIASED}
    first = {(r["battle_id"], r["judge"]): r["order"] for r in default}
    assert len(extra) == sum(judge == BIASED for _, judge in first)
    assert all(r["order"] != first[(r["battle_id"], r["judge"])] for r in extra)
    assert new_calls == len(extra)  # the first pass came from the journal


def test_default_policy_rates_closer_to_the_planted_strengths(arena_votes) -> None:
    arena, default, reasked, _, _ = arena_votes
    truth = _ratings(arena, _honest(default), "none")
    assert sorted(truth, key=truth.get, reverse=True) == NAMES
    distances = {
        "none (every vote counts)": _distance(_ratings(arena, default, "none"), truth),
        "downweight (default)": _distance(_ratings(arena, default, "downweight"), truth),
        "drop": _distance(_ratings(arena, default, "drop"), truth),
        "reask": _distance(_ratings(arena, reasked, "reask"), truth),
    }
    report = ", ".join(f"{name}: {value:.1f}" for name, value in distances.items())
    message = f"RMS distance (Elo points) to the honest-judge ratings: {report}"
    print(message)
    assert distances["downweight (default)"] < distances["none (every vote counts)"], message
    assert distances["drop"] < distances["none (every vote counts)"], message
    assert distances["reask"] < distances["none (every vote counts)"], message


def test_votes_in_both_orders_count_once_and_a_split_pair_is_a_tie() -> None:
    from warriorcoder.scoring.tally import tally_battles

    base = {"battle_id": "b", "instruction_id": "i", "attacker": "a", "defender": "d"}
    rows = [
        {**base, "judge": "j1", "order": "attacker_first", "winner": "attacker"},
        {**base, "judge": "j1", "order": "defender_first", "winner": "defender"},  # split: tie
        {**base, "judge": "j2", "order": "attacker_first", "winner": "attacker"},
        {**base, "judge": "j2", "order": "defender_first", "winner": "attacker"},  # agree: 1
        {**base, "judge": "j3", "order": "attacker_first", "winner": "invalid"},
        {**base, "judge": "j3", "order": "defender_first", "winner": "defender"},  # one valid
    ]
    votes = {k: [r[k] for r in rows] for k in rows[0]}
    (tally,) = tally_battles(votes)
    # j1 tie 0.5 / 0.5, j2 attacker 1 / 0, j3 defender 0 / 1 -> 1.5 vs 1.5 over 3 verdicts
    assert (tally.t_attacker, tally.t_defender, tally.valid, tally.votes) == (1.5, 1.5, 3, 6)
    (weighted,) = tally_battles(votes, {"j2": 0.5, "j3": 0.0})
    # j1 tie 0.5 / 0.5, j2 0.5 x 1 / 0, j3 dropped -> 1.0 vs 0.5 over 2 verdicts
    assert (weighted.t_attacker, weighted.t_defender, weighted.valid) == (1.0, 0.5, 2)
    assert replace(weighted, t_defender=1.0).outcome == 0.5
