"""A whole simulated lineage, mined_raw to sft_final, published in a local hub: the arena of
`tests/test_pipeline_e2e.py` (5 experts of known strength on the TGI test server, one judge
with a position bias, 10% invalid verdicts), for tests that read what a run leaves behind
(cards, figures, the report).

    config, store = sim_lineage(tmp_path, answer_suffix="<b>hostile</b>")

`answer_suffix` is appended to every expert's answer (not to judges' replies), so a test can
plant text that must never be interpreted (HTML, script) in the published rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.sim_battles import BattleSim
from tests.support.sim_instructions import sim_arena
from warriorcoder.builders import PHASES
from warriorcoder.config import ArenaConfig
from warriorcoder.hub import HubStore, open_store
from warriorcoder.runner import run_phase
from warriorcoder.scoring.verdicts import JUDGE_PROMPT

NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
STRENGTHS = dict(zip(NAMES, (0.9, 0.7, 0.5, 0.3, 0.1), strict=True))
_JUDGE_OPENING = JUDGE_PROMPT.split("{instruction}")[0]


def sim_lineage(root: Path, answer_suffix: str = "") -> tuple[ArenaConfig, HubStore]:
    """Run mine .. select on the simulated arena under `root`; the config and its store."""
    sim = BattleSim(STRENGTHS, position_bias={"gamma": 0.8}, invalid_rate=0.1)

    def responder(kind: str, payload: dict[str, Any], model_name: str) -> str:
        text = sim.responder(kind, payload, model_name)
        messages = payload.get("messages") or [{}]
        judging = str(messages[-1].get("content", "")).startswith(_JUDGE_OPENING)
        return text + answer_suffix if kind == "chat" and not judging else text

    with sim_arena(root, NAMES, fallback=responder) as arena:
        config = arena.config
        config.compress.size = 20
        config.battle.max_new_tokens = 40
        config.judge.max_new_tokens = 200
        config.select.elo_permutations = 10
        config.select.bootstrap_rounds = 20
        store = open_store(config.hub)
        for phase in PHASES:
            run_phase(phase, config, store=store)
    return config, store
