"""`mine.instruction_start`: mined instructions begin with it; the expert writes the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import DatasetCard

from tests.support.sim_instructions import sim_config
from tests.support.tgi_server import FakeModel, TGITestServer
from warriorcoder.builders.mine import mining_slots
from warriorcoder.config import ArenaConfig, ConfigError, parse_config
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase

START = "Write a Python function"
STOP = "<|im_end|>"
NOWHERE = {"solo": "http://127.0.0.1:9", "other": "http://127.0.0.1:9"}


def continue_or_stop(kind: str, payload: dict[str, Any], model_name: str) -> str:
    """A miner that goes on from the start with a task, except for seed-divisible-by-4 calls,
    where it ends the user turn at once (adding nothing to the start)."""
    prompt = payload["inputs"]
    seed = payload["parameters"]["seed"]
    assert prompt.endswith(f"<|im_start|>user\n{START}"), prompt[-80:]
    if seed % 4 == 0:
        return STOP
    return f" that returns {seed} plus its argument, named `add_{seed}`.{STOP}"


def config_for(root: Path, urls: dict[str, str], **mine: Any) -> ArenaConfig:
    data = sim_config(root, urls).model_dump(mode="json", exclude_none=True)
    data["mine"].update(samples_per_config=1, **mine)
    return ArenaConfig.model_validate(data)


def test_instructions_begin_with_the_start_and_the_expert_writes_the_rest(tmp_path: Path) -> None:
    models = {name: FakeModel(f"sim/{name}-coder", responder=continue_or_stop)
              for name in ("solo", "other")}
    with TGITestServer(models) as server:
        config = config_for(tmp_path, {name: server.url(name) for name in models},
                            instruction_start=START)
        store = open_store(config.hub)
        ref = run_phase("mine", config, store=store)
        rows = store.load("mined_raw", ref.version)
    seeds = [slot.seed for slot in mining_slots(config)]

    continued = [s for s in seeds if s % 4]
    assert sorted(rows["seed"]) == sorted(continued)  # an empty continuation is rejected
    for row in rows:
        written = f" that returns {row['seed']} plus its argument, named `add_{row['seed']}`."
        assert row["instruction"] == START + written
        assert row["raw_output"] == written
    card = DatasetCard.load(Path(ref.location) / "README.md")
    assert f"`mine.instruction_start` = {START!r}" in card.text
    assert card.data.to_dict()["warriorcoder"]["config"]["mine"]["instruction_start"] == START
    rejected = len(seeds) - len(continued)
    assert rejected > 0
    empty_solo = sum(seed % 4 == 0 for seed in _seeds_of(config, "solo"))
    assert f"| solo | empty instruction | {empty_solo} |" in card.text


def test_without_a_start_the_config_dump_and_ids_are_the_papers(tmp_path: Path) -> None:
    config = config_for(tmp_path, NOWHERE)
    assert "instruction_start" not in config.model_dump(mode="json")["mine"]
    started = config_for(tmp_path, NOWHERE, instruction_start=START)
    assert started.model_dump(mode="json")["mine"]["instruction_start"] == START


def test_a_start_ending_in_whitespace_is_refused_with_the_fix() -> None:
    text = ("experts:\n  - {name: a, model_id: m/a, urls: ['http://127.0.0.1:9']}\n"
            "  - {name: b, model_id: m/b, urls: ['http://127.0.0.1:9']}\n"
            f"mine:\n  instruction_start: '{START} '\n")
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="arena.yaml")
    message = str(error.value)
    assert "mine.instruction_start (arena.yaml, line 5)" in message
    assert "ends in whitespace" in message and repr(START) in message


def _seeds_of(config: ArenaConfig, expert: str) -> list[int]:
    return [slot.seed for slot in mining_slots(config) if slot.expert == expert]
