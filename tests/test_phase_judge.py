"""`judge` -> `votes` against the TGI test server: simulated experts of known strengths, honest
judges that prefer the stronger answer with a set probability, one judge with a planted
position bias. The votes card must recover both, and the fairness rules must hold."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.sim_battles import (
    BattleSim,
    battle_arena,
    compressed_rows,
    publish_parent,
)
from warriorcoder.builders.base import PhaseError
from warriorcoder.builders.judge import vote_seed
from warriorcoder.lineage import card_lineage
from warriorcoder.runner import run_phase
from warriorcoder.scoring.tally import ATTACKER_FIRST
from warriorcoder.scoring.verdicts import render_judge_prompt

NAMES = ["e0", "e1", "e2", "e3", "e4"]
STRENGTHS = dict(zip(NAMES, [0.9, 0.7, 0.5, 0.3, 0.1], strict=True))
BIASED, BIAS = "e2", 0.8
INSTRUCTIONS = 1000


def card_table(card: str, first_header: str) -> list[dict[str, str]]:
    """The markdown table of a card whose header starts with `| first_header |`."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")),
                             strict=True)))
    return rows


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    sim = BattleSim(STRENGTHS, accuracy=0.8, position_bias={BIASED: BIAS},
                    invalid_rate=0.1, unjudgeable_rate=0.01)
    root = tmp_path_factory.mktemp("judge")
    with battle_arena(root, sim) as arena:
        miners = [NAMES[i % 5] for i in range(INSTRUCTIONS)]
        publish_parent(arena.store, "compress", compressed_rows(miners))
        battles = run_phase("battle", arena.config, store=arena.store)
        votes = run_phase("judge", arena.config, store=arena.store)
        yield arena, battles, votes


def test_no_judge_judges_its_own_battle_and_every_other_expert_does(judged) -> None:
    arena, battles_ref, votes_ref = judged
    votes = arena.store.load("votes", votes_ref.version).to_list()
    battles = arena.store.load("battles", battles_ref.version).to_list()
    judges: dict[str, set[str]] = {}
    for vote in votes:
        assert vote["judge"] not in (vote["attacker"], vote["defender"])
        judges.setdefault(vote["battle_id"], set()).add(vote["judge"])
    for battle in battles:
        assert judges[battle["battle_id"]] == set(NAMES) - {battle["attacker"], battle["defender"]}
    attacks = Counter(b["attacker"] for b in battles)
    defences = Counter(b["defender"] for b in battles)
    assert all(abs(attacks[e] - defences[e]) <= 1 for e in NAMES)
    first = sum(v["order"] == ATTACKER_FIRST for v in votes) / len(votes)
    assert abs(first - 0.5) < 0.03


def test_verdicts_are_the_judges_own_and_map_back_to_the_sides(judged) -> None:
    arena, _, votes_ref = judged
    votes = arena.store.load("votes", votes_ref.version).to_list()
    sim, max_attempts = arena.sim, arena.config.judge.max_attempts
    for vote in votes:
        answers = (vote["response_attacker"], vote["response_defender"])
        attacker_first = vote["order"] == ATTACKER_FIRST
        prompt = render_judge_prompt(vote["instruction"], *(answers if attacker_first
                                                             else answers[::-1]))
        assert vote["seed"] == vote_seed(arena.config.judge, vote["battle_id"], vote["judge"],
                                         vote["order"], vote["attempts"] - 1)
        intended = sim.intended(vote["judge"], prompt, vote["seed"])
        assert vote["verdict"] == intended  # including answers that quote `[[A]]`
        if intended is None:
            assert vote["winner"] == "invalid" and vote["attempts"] == max_attempts
        elif intended == "Tie":
            assert vote["winner"] == "tie"
        else:
            shown_first = "attacker" if attacker_first else "defender"
            other = "defender" if attacker_first else "attacker"
            assert vote["winner"] == (shown_first if intended == "A" else other)
    retried = [v for v in votes if v["verdict"] is not None and v["attempts"] > 1]
    assert retried, "some replies without a verdict were retried successfully"
    unjudgeable = {v["battle_id"] for v in votes if sim.unjudgeable(v["instruction"])}
    assert unjudgeable
    assert all(v["winner"] == "invalid" for v in votes if v["battle_id"] in unjudgeable)


def test_card_recovers_the_strength_order_and_the_planted_bias(judged) -> None:
    arena, _, votes_ref = judged
    card = arena.store.read_card("votes", votes_ref.version)
    ratings = card_table(card, "expert")
    assert [row["expert"] for row in ratings] == NAMES  # sorted by the eq. 5 rating
    for method in ("permutation Elo", "Bradley-Terry"):
        values = [float(row[method]) for row in ratings]
        assert values == sorted(values, reverse=True), method
    for row in ratings:  # the bootstrap interval of the ML fit holds its point estimate
        low, high = (float(v) for v in row["Bradley-Terry 95% CI"].strip("[]").split(","))
        assert low <= float(row["Bradley-Terry"]) <= high
    judges = {row["judge"]: row for row in card_table(card, "judge")}
    share = float(judges[BIASED]["first-shown share"].split()[0])
    assert abs(share - BIAS) < 0.04
    for name in set(NAMES) - {BIASED}:
        assert abs(float(judges[name]["first-shown share"].split()[0]) - 0.5) < 0.07
    # flagged by the binomial test and, under the default policy, weighed 2 x (1 - 0.8) = 0.4
    assert judges[BIASED]["biased"] == "**yes**"
    assert float(judges[BIASED]["vote weight"]) == pytest.approx(2 * (1 - BIAS), abs=0.08)
    assert all(judges[name]["biased"] == "no" and judges[name]["vote weight"] == "1.000"
               for name in set(NAMES) - {BIASED})
    assert "Fleiss' kappa" in card
    assert "![Win rates](figures/win_rate.png)" in card
    png = (arena.store.get("votes", votes_ref.version).location + "/figures/win_rate.png")
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_rerun_is_served_from_the_journal(judged) -> None:
    arena, _, votes_ref = judged
    calls = sum(arena.sim.judge_calls.values())
    again = run_phase("judge", arena.config, store=arena.store)
    assert sum(arena.sim.judge_calls.values()) == calls
    assert arena.store.load("votes", again.version).to_list() == \
        arena.store.load("votes", votes_ref.version).to_list()


def test_both_orders_and_constrained_verdicts(tmp_path) -> None:
    sim = BattleSim(STRENGTHS, position_bias={BIASED: 1.0}, invalid_rate=0.5)
    with battle_arena(tmp_path, sim, judge={"both_orders": True,
                                            "constrained_verdicts": True}) as arena:
        publish_parent(arena.store, "compress", compressed_rows(NAMES * 8))
        run_phase("battle", arena.config, store=arena.store)
        ref = run_phase("judge", arena.config, store=arena.store)
        votes = arena.store.load("votes", ref.version).to_list()
        card = arena.store.read_card("votes", ref.version)
    pairs = Counter((v["battle_id"], v["judge"]) for v in votes)
    assert set(pairs.values()) == {2}
    orders = {(v["battle_id"], v["judge"], v["order"]) for v in votes}
    assert len(orders) == len(votes)
    # the grammar reached the server: the simulation only answers validly under it
    assert all(v["winner"] != "invalid" and v["attempts"] == 1 for v in votes)
    judges = {row["judge"]: row for row in card_table(card, "judge")}
    # a judge that always picks the first answer flips on every battle it saw in both orders
    assert judges[BIASED]["flip rate"].startswith("1.000")


def test_a_battle_without_an_eligible_judge_is_refused(tmp_path) -> None:
    sim = BattleSim(STRENGTHS)
    with battle_arena(tmp_path, sim, judge={"judges": ["e0"]}) as arena:
        publish_parent(arena.store, "compress", compressed_rows(NAMES * 2))
        run_phase("battle", arena.config, store=arena.store)
        with pytest.raises(PhaseError, match="no expert may judge the battles of"):
            run_phase("judge", arena.config, store=arena.store)


def test_changing_select_alpha_reuses_the_votes_and_publishes_a_new_sft_final(tmp_path) -> None:
    sim = BattleSim(STRENGTHS, invalid_rate=0.0)
    with battle_arena(tmp_path, sim) as arena:
        publish_parent(arena.store, "compress", compressed_rows(NAMES * 4))
        run_phase("battle", arena.config, store=arena.store)
        votes = run_phase("judge", arena.config, store=arena.store)
        final = run_phase("select", arena.config, store=arena.store)
        calls = sum(sim.judge_calls.values())

        changed = arena.config.model_copy(
            update={"select": arena.config.select.model_copy(update={"alpha": 0.2})})
        votes_again = run_phase("judge", changed, store=arena.store)
        final_again = run_phase("select", changed, store=arena.store)

    assert votes_again.reused and votes_again.version == votes.version
    assert sum(sim.judge_calls.values()) == calls  # no judge was asked again
    assert not final_again.reused and final_again.version != final.version
    lineage = card_lineage(arena.store.read_card("sft_final", final_again.version))
    assert lineage["config"]["select"]["alpha"] == 0.2
    assert lineage["parent"]["version"] == votes.version
