"""sft_final loads for TRL both ways, with `load_dataset` and no conversion step: its default
config as SFT `messages`, its `preference` config as DPO pairs (`prompt` / `chosen` /
`rejected`), each checked with TRL's own dataset helpers; the pairs are the battles the votes
decided, recomputed here from the votes' rows."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from datasets import load_dataset

from tests.support.sim_battles import BattleSim
from tests.support.sim_instructions import CHATML_TEMPLATE, sim_arena
from tests.support.tiny_models import gpt2_tokenizer
from warriorcoder.builders import PHASES
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase

trl_data = pytest.importorskip("trl.data_utils")

NAMES = ("alpha", "beta", "gamma", "delta")
STRENGTHS = dict(zip(NAMES, (0.9, 0.6, 0.4, 0.1), strict=True))


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulated arena, mine .. select, on a local hub store (votes unweighted: policy
    `none`, so the pairs can be recomputed from the raw votes)."""
    sim = BattleSim(STRENGTHS, invalid_rate=0.1)
    root = tmp_path_factory.mktemp("trl")
    with sim_arena(root, NAMES, fallback=sim.responder, compress_size=12) as arena:
        config = arena.config
        config.battle.max_new_tokens = 40
        config.judge.max_new_tokens = 200
        config.judge.bias_policy = "none"
        config.select.elo_permutations = 10
        config.select.bootstrap_rounds = 20
        store = open_store(config.hub)
        for phase in PHASES:
            run_phase(phase, config, store=store)
    final, votes = store.latest("sft_final"), store.latest("votes")
    return {"folder": final.location, "votes": store.load("votes", votes.version),
            "card": store.read_card("sft_final", final.version)}


def _tokenizer() -> Any:
    tokenizer = gpt2_tokenizer()
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def test_the_default_config_is_trl_conversational_sft(published: dict[str, Any]) -> None:
    sft = load_dataset(published["folder"], split="train")
    assert "messages" in sft.column_names and len(sft) > 0
    row = sft[0]
    assert trl_data.is_conversational(row)
    text = trl_data.maybe_apply_chat_template({"messages": row["messages"]}, _tokenizer())["text"]
    assert row["instruction"] in text and row["response"] in text


def test_the_preference_config_is_trl_dpo_pairs(published: dict[str, Any]) -> None:
    pairs = load_dataset(published["folder"], "preference", split="train")
    assert {"prompt", "chosen", "rejected"} <= set(pairs.column_names) and len(pairs) > 0
    tokenizer = _tokenizer()
    for row in pairs:
        assert trl_data.is_conversational(row)
        assert trl_data.maybe_extract_prompt(row) == row, "the prompt is explicit"
        rendered = trl_data.maybe_apply_chat_template(
            {k: row[k] for k in ("prompt", "chosen", "rejected")}, tokenizer)
        assert rendered["prompt"].endswith("<|im_start|>assistant\n")
        assert row["prompt"][0]["content"] in rendered["prompt"]
        assert rendered["chosen"].startswith(row["chosen"][0]["content"])
        assert rendered["rejected"].startswith(row["rejected"][0]["content"])
    unpaired = trl_data.unpair_preference_dataset(pairs.select_columns(
        ["prompt", "chosen", "rejected"]))
    assert len(unpaired) == 2 * len(pairs) and sum(unpaired["label"]) == len(pairs)
    assert "`preference`" in published["card"] and "DPOTrainer" in published["card"]


def test_the_pairs_are_the_battles_the_votes_decided(published: dict[str, Any]) -> None:
    votes = published["votes"]
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    sides: dict[str, tuple[str, str, str, str]] = {}
    for row in votes:
        share = {"attacker": (1.0, 0.0), "defender": (0.0, 1.0), "tie": (0.5, 0.5)}.get(
            row["winner"])
        sides[row["battle_id"]] = (row["attacker"], row["defender"], row["response_attacker"],
                                   row["response_defender"])
        if share is not None:
            totals[row["battle_id"]][0] += share[0]
            totals[row["battle_id"]][1] += share[1]
    expected = {}
    for battle, (t_a, t_d) in totals.items():
        if t_a != t_d and not any(votes.filter(lambda r, b=battle: r["battle_id"] == b)[
                f"truncated_{'attacker' if t_a > t_d else 'defender'}"]):
            attacker, defender, r_a, r_d = sides[battle]
            expected[battle] = ((attacker, r_a), (defender, r_d)) if t_a > t_d else \
                ((defender, r_d), (attacker, r_a))
    pairs = load_dataset(published["folder"], "preference", split="train")
    got = {row["id"]: ((row["chosen_expert"], row["chosen"][0]["content"]),
                       (row["rejected_expert"], row["rejected"][0]["content"]))
           for row in pairs}
    assert got == expected
    assert len(got) < len(sides), "ties and unjudged battles are left out"


def test_a_version_with_pairs_still_loads_by_path_alone(published: dict[str, Any]) -> None:
    """The default config is what `load_dataset(folder)` gives, as before the pairs."""
    folder = Path(published["folder"])
    assert sorted(p.parent.name for p in folder.rglob("*.parquet")) == ["data", "preference"]
    assert load_dataset(str(folder), split="train").column_names == load_dataset(
        str(folder), "default", split="train").column_names
