"""The six phases, mine to sft_final, against the TGI test server with 5 simulated experts:
a run killed in the middle of `judge` and restarted gives the same `sft_final` rows as an
uninterrupted run (each run with its own server, hub store and journal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.sim_battles import BattleSim
from tests.support.sim_instructions import sim_arena
from warriorcoder.builders import PHASES
from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards import card_lineage
from warriorcoder.hub import HubStore, open_store
from warriorcoder.runner import run_phase

NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
STRENGTHS = dict(zip(NAMES, (0.9, 0.7, 0.5, 0.3, 0.1), strict=True))
KILL_AT = 25
"""The judge call during which the first run is killed (the call itself is never answered)."""


def _battle_sim() -> BattleSim:
    return BattleSim(STRENGTHS, position_bias={"gamma": 0.8}, invalid_rate=0.1)


def _tune(config: ArenaConfig) -> None:
    config.compress.size = 20
    config.battle.max_new_tokens = 40
    config.judge.max_new_tokens = 200
    config.select.elo_permutations = 10
    config.select.bootstrap_rounds = 20


def _settled(sim: BattleSim) -> int:
    """Judge calls once the server has finished what the killed client had already sent."""
    count = -1
    while count != sum(sim.judge_calls.values()):
        count = sum(sim.judge_calls.values())
        time.sleep(0.5)
    return count


def _sft_rows(store: HubStore) -> list[dict]:
    ref = store.latest("sft_final")
    assert ref is not None
    return store.load("sft_final", ref.version).to_list()


def test_killed_in_judge_and_restarted_gives_the_same_sft_final(tmp_path: Path) -> None:
    # 1. uninterrupted, in this process
    straight = _battle_sim()
    with sim_arena(tmp_path / "straight", NAMES, fallback=straight.responder) as arena:
        _tune(arena.config)
        store = open_store(arena.config.hub)
        for phase in PHASES:
            run_phase(phase, arena.config, store=store)
        expected = _sft_rows(store)
        final = card_lineage(store.read_card("sft_final", store.latest("sft_final").version))
        # select makes no call: it names the experts and their revisions as the votes card did
        assert {e["name"]: e.get("revision_source") for e in final["experts"]} == {
            name: "server" for name in NAMES}
    judge_calls = sum(straight.judge_calls.values())
    assert len(expected) == 20 and judge_calls >= 60

    # 2. `warriorcoder run` in a subprocess, killed during a judge call, then the phase rerun
    resumed = _battle_sim()
    with sim_arena(tmp_path / "killed", NAMES, fallback=resumed.responder) as arena:
        _tune(arena.config)
        path = tmp_path / "killed" / "arena.yaml"
        path.write_text(yaml.safe_dump(arena.config.to_yaml_dict(), sort_keys=False))
        log = (tmp_path / "killed" / "run.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "warriorcoder.cli", "run", "-c", str(path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )

        def kill(total: int) -> None:
            if total == KILL_AT:
                process.send_signal(signal.SIGKILL)
                process.wait(30)

        resumed.on_judge_call = kill
        try:
            returncode = process.wait(300)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
        resumed.on_judge_call = None
        store = open_store(arena.config.hub)
        assert returncode == -signal.SIGKILL, (tmp_path / "killed" / "run.log").read_text()
        assert store.latest("battles") is not None and store.latest("votes") is None

        before = _settled(resumed)
        run_phase("judge", arena.config, store=store)
        run_phase("select", arena.config, store=store)
        resent = sum(resumed.judge_calls.values()) - before
        assert _sft_rows(store) == expected
    # the restart resumed: the votes journaled before the kill were not asked again
    assert resent < judge_calls, (before, resent, judge_calls)
    assert before + resent >= judge_calls
