"""`battle` -> `battles` against the TGI test server with simulated experts."""

from __future__ import annotations

from collections import Counter

import pytest
from huggingface_hub import DatasetCard

from tests.support.sim_battles import (
    BattleSim,
    battle_arena,
    compressed_rows,
    publish_parent,
)
from warriorcoder.errors import InputDatasetError
from warriorcoder.generation import GenerationFailed
from warriorcoder.runner import run_phase

NAMES = ["e0", "e1", "e2", "e3", "e4"]
STRENGTHS = dict(zip(NAMES, [0.9, 0.7, 0.5, 0.3, 0.1], strict=True))
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    sim = BattleSim(STRENGTHS, long_answer_rate=0.1)
    root = tmp_path_factory.mktemp("battle")
    with battle_arena(root, sim, battle={"battles_per_instruction": 2,
                                         "max_new_tokens": MAX_TOKENS}) as arena:
        miners = [NAMES[i % 5] for i in range(60)]
        publish_parent(arena.store, "compress", compressed_rows(miners))
        ref = run_phase("battle", arena.config, store=arena.store)
        yield arena, ref


def test_every_instruction_meets_distinct_defenders_with_fair_turns(arena) -> None:
    arena, ref = arena
    rows = arena.store.load("battles", ref.version).to_list()
    assert len(rows) == 120
    by_instruction: dict[str, list[dict]] = {}
    for row in rows:
        by_instruction.setdefault(row["instruction_id"], []).append(row)
    for battles in by_instruction.values():
        defenders = [b["defender"] for b in battles]
        assert len(set(defenders)) == 2
        assert battles[0]["attacker"] not in defenders
    attacks = Counter(r["attacker"] for r in rows)
    defences = Counter(r["defender"] for r in rows)
    assert all(abs(attacks[e] - defences[e]) <= 1 for e in NAMES)
    assert len({r["battle_id"] for r in rows}) == len(rows)


def test_each_side_answers_through_its_own_expert_once_per_instruction(arena) -> None:
    arena, ref = arena
    rows = arena.store.load("battles", ref.version).to_list()
    for row in rows:
        assert arena.sim.author_of(row["response_attacker"]) == row["attacker"]
        assert arena.sim.author_of(row["response_defender"]) == row["defender"]
        assert row["model_id_attacker"] == f"sim/{row['attacker']}"
    distinct = {(r["instruction_id"], r[side]) for r in rows for side in ("attacker", "defender")}
    # the attacker fights two battles per instruction but is asked once
    assert sum(arena.sim.answer_calls.values()) == len(distinct) < 2 * len(rows)


def test_length_cut_answers_are_kept_and_flagged(arena) -> None:
    arena, ref = arena
    rows = arena.store.load("battles", ref.version).to_list()
    flagged = 0
    for row in rows:
        for side in ("attacker", "defender"):
            cut = row[f"finish_reason_{side}"] == "length"
            assert row[f"truncated_{side}"] == cut
            assert (row[f"tokens_{side}"] == MAX_TOKENS) == cut
            flagged += cut
    assert flagged > 0


def test_card_records_the_schedule_and_a_rerun_sends_nothing(arena) -> None:
    arena, ref = arena
    card = DatasetCard(arena.store.read_card("battles", ref.version))
    assert "## Defender schedule" in card.text
    assert "`battle.seed` = 0" in card.text
    assert "every expert's defences equal its attacks within one" in card.text
    calls = sum(arena.sim.answer_calls.values())
    again = run_phase("battle", arena.config, store=arena.store)
    assert sum(arena.sim.answer_calls.values()) == calls  # all from the journal
    assert arena.store.load("battles", again.version).to_list() == \
        arena.store.load("battles", ref.version).to_list()


def test_an_impossible_balance_is_reported_not_hidden(tmp_path) -> None:
    sim = BattleSim(STRENGTHS)
    with battle_arena(tmp_path, sim) as arena:
        miners = ["e0"] * 12 + ["e1", "e2", "e3", "e4"] * 2
        publish_parent(arena.store, "compress", compressed_rows(miners))
        ref = run_phase("battle", arena.config, store=arena.store)
        card = arena.store.read_card("battles", ref.version)
    assert "Deviation from equal attack and defence turns" in card
    assert "`e0` mined 12 of 20 instructions" in card


def test_rows_mined_by_an_unknown_expert_are_named(tmp_path) -> None:
    with battle_arena(tmp_path, BattleSim(STRENGTHS)) as arena:
        publish_parent(arena.store, "compress", compressed_rows(["e0", "e1", "zoe"]))
        with pytest.raises(InputDatasetError, match=r"row 'ins00002' was mined by 'zoe'"):
            run_phase("battle", arena.config, store=arena.store)


def test_an_expert_that_stays_down_fails_the_phase_and_a_rerun_resumes(tmp_path) -> None:
    sim = BattleSim(STRENGTHS)
    with battle_arena(tmp_path, sim, generation={"max_retries": 1, "backoff_base_s": 0.01,
                                                 "backoff_max_s": 0.01}) as arena:
        publish_parent(arena.store, "compress", compressed_rows(NAMES * 4))
        arena.server.set_down("e4")
        with pytest.raises(GenerationFailed, match="calls failed"):
            run_phase("battle", arena.config, store=arena.store)
        assert arena.store.latest("battles") is None
        answered = sum(arena.sim.answer_calls.values())
        arena.server.set_down("e4", down=False)
        ref = run_phase("battle", arena.config, store=arena.store)
        rows = arena.store.load("battles", ref.version).to_list()
    # only e4's answers were missing: e4 attacks 4 times and defends 4 times
    assert sum(arena.sim.answer_calls.values()) - answered == arena.sim.answer_calls["e4"] == 8
    assert len(rows) == 20
