"""`mine` -> `mined_raw` against the TGI test server with three simulated experts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from tests.support.sim_instructions import EMPTY, TRUNCATED, SimArena, sim_arena
from warriorcoder.builders.mine import extract_instruction, mining_slots
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase
from warriorcoder.scoring.seeds import stable_id

STOP = "<|im_end|>"


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory):
    with sim_arena(tmp_path_factory.mktemp("mine")) as arena:
        yield arena


@pytest.fixture(scope="module")
def mined(arena: SimArena):
    store = open_store(arena.config.hub)
    ref = run_phase("mine", arena.config, store=store)
    return store, ref, store.load("mined_raw", ref.version)


def test_every_sampling_config_is_asked_with_its_own_seed(arena: SimArena, mined) -> None:
    slots = mining_slots(arena.config)
    mine = arena.config.mine
    assert len(slots) == 3 * len(mine.temperatures) * len(mine.top_ps) * mine.samples_per_config
    for expert in arena.config.expert_names:
        seeds = [slot.seed for slot in slots if slot.expert == expert]
        assert len(set(seeds)) == len(seeds)
    # The server answered every call once: top_p 1.0 passed its validation (sent as unset).
    assert arena.server.stats.served_inputs and set(
        arena.server.stats.served_inputs.values()) == {1}
    assert arena.served() == len(slots)


def test_rows_are_the_planned_instructions_minus_rejected(arena: SimArena, mined) -> None:
    _, _, rows = mined
    planted = arena.sim.planted
    assert len(rows) == planted.requests - planted.truncated - planted.empty
    kinds = Counter(arena.sim.kind_of(row["expert"], row["seed"]) for row in rows)
    assert kinds[TRUNCATED] == kinds[EMPTY] == 0
    for row in rows:
        # The user turn ended at the template's stop string, which is not part of the text.
        assert row["finish_reason"] == "stop_sequence"
        assert row["instruction"] and STOP not in row["raw_output"]
        assert row["instruction"] == row["raw_output"].strip()
        assert row["generated_tokens"] > 0
    texts = arena.sim.planted_texts
    assert sorted(rows["instruction"]) == sorted(
        t.strip() for kind, group in texts.items() if kind not in (TRUNCATED, EMPTY) for t in group)


def test_instruction_is_the_text_before_the_first_stop() -> None:
    stops = ("<|im_end|>", "<|endoftext|>")
    assert extract_instruction("  Sort a list.\n<|endoftext|>x<|im_end|>", stops) == "Sort a list."
    assert extract_instruction("Sort a list.", stops) == "Sort a list."
    assert extract_instruction(" \n<|im_end|>Sort", stops) == ""


def test_rows_record_model_identity_and_stable_ids(arena: SimArena, mined) -> None:
    _, _, rows = mined
    models = arena.server.models
    assert len(set(rows["id"])) == len(rows)
    for row in rows:
        model = models[row["expert"]]
        assert row["model_id"] == model.model_id
        assert row["model_revision"] == model.model_sha
        assert row["id"] == stable_id(row["expert"], row["model_revision"], row["temperature"],
                                      row["top_p"], row["seed"])
    per_config = Counter((r["expert"], r["temperature"], r["top_p"]) for r in rows)
    mine = arena.config.mine
    assert len(per_config) == 3 * len(mine.temperatures) * len(mine.top_ps)


def test_version_loads_plainly_and_card_counts_rejections(
    arena: SimArena, mined, tmp_path: Path
) -> None:
    _, ref, rows = mined
    # A cache of its own: datasets' cache key of a local folder is its name and README configs.
    loaded = datasets.load_dataset(ref.location, split="train", cache_dir=str(tmp_path))
    assert loaded.to_list() == rows.to_list()
    card = DatasetCard.load(Path(ref.location) / "README.md")
    lineage = card.data.to_dict()["warriorcoder"]
    assert lineage["parent"] is None
    planted = arena.sim.planted
    counts = lineage["counts"]
    assert counts["requests"] == planted.requests
    assert counts["not cut by the length limit"] == planted.requests - planted.truncated
    assert counts["mined instructions (non-empty)"] == len(rows)
    assert sorted(e["name"] for e in lineage["experts"]) == sorted(arena.config.expert_names)
    assert "Rejected completions" in card.text and "cut by the length limit" in card.text


def test_rerun_sends_no_new_calls_and_gives_the_same_rows(arena: SimArena, mined) -> None:
    store, ref, rows = mined
    before = arena.served()
    again = run_phase("mine", arena.config, store=store)
    assert arena.served() == before
    assert again.reused and again.version == ref.version  # nothing new to publish
    forced = run_phase("mine", arena.config, store=store, force=True)
    assert arena.served() == before  # the journal answers every call of the rebuild
    assert forced.version != ref.version and not forced.reused
    assert store.load("mined_raw", forced.version).to_list() == rows.to_list()
