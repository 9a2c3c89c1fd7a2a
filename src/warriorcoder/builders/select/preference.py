"""The `preference` config of `sft_final`: every decided battle as a DPO pair, in TRL's format.

A battle the judges decided (a majority of valid votes for one side; ties and unjudged battles
are left out) gives one row in TRL's conversational preference format, which `DPOTrainer`
takes as it is (Arena Learning trained DPO and PPO on exactly such pairs):

    prompt:   [{"role": "user", "content": instruction}]
    chosen:   [{"role": "assistant", "content": the winner's answer}]
    rejected: [{"role": "assistant", "content": the loser's answer}]

beside the battle, its instruction, the two experts and their vote totals (eq. 2's t). A pair
whose winning answer was cut by the length limit is left out, as select leaves such answers
out of the targets (unless `select.allow_truncated_targets`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets

from warriorcoder.builders.base import rows_dataset
from warriorcoder.dataset_cards import CardSection
from warriorcoder.scoring.tally import BattleTally

CONFIG_NAME = "preference"
TURN = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "instruction_id": datasets.Value("string"),
    "prompt": TURN,
    "chosen": TURN,
    "rejected": TURN,
    "chosen_expert": datasets.Value("string"),
    "rejected_expert": datasets.Value("string"),
    "chosen_votes": datasets.Value("float64"),
    "rejected_votes": datasets.Value("float64"),
    "valid_votes": datasets.Value("int32"),
})
"""Columns of the pairs: `id` is the battle's; `chosen_votes` / `rejected_votes` are the vote
totals of eq. 2 (a Tie vote counts half to each side), of `valid_votes` valid votes."""


def preference_pairs(tallies: Sequence[BattleTally], battles: Mapping[str, Mapping[str, Any]],
                     allow_truncated: bool) -> tuple[datasets.Dataset, dict[str, int]]:
    """The decided battles as TRL preference pairs, and how many battles went where."""
    rows, counts = [], {"battles": len(tallies), "undecided (tie or no valid vote)": 0,
                        "winning answer cut by the length limit": 0}
    for tally in tallies:
        if not tally.judged or tally.outcome == 0.5:
            counts["undecided (tie or no valid vote)"] += 1
            continue
        battle = battles[tally.battle_id]
        won = "attacker" if tally.outcome == 1.0 else "defender"
        lost = "defender" if won == "attacker" else "attacker"
        if battle.get(f"truncated_{won}") and not allow_truncated:
            counts["winning answer cut by the length limit"] += 1
            continue
        votes = {"attacker": tally.t_attacker, "defender": tally.t_defender}
        rows.append({
            "id": tally.battle_id,
            "instruction_id": tally.instruction_id,
            "prompt": [{"role": "user", "content": battle["instruction"]}],
            "chosen": [{"role": "assistant", "content": battle[f"response_{won}"]}],
            "rejected": [{"role": "assistant", "content": battle[f"response_{lost}"]}],
            "chosen_expert": getattr(tally, won),
            "rejected_expert": getattr(tally, lost),
            "chosen_votes": float(votes[won]),
            "rejected_votes": float(votes[lost]),
            "valid_votes": tally.valid,
        })
    counts["pairs"] = len(rows)
    return rows_dataset(rows, features=FEATURES), counts


def preference_section(counts: Mapping[str, int]) -> CardSection:
    """The card's account of the `preference` config and how TRL takes it."""
    table = "\n".join(["| battles | count |", "|---|---:|",
                       *(f"| {name} | {number} |" for name, number in counts.items())])
    text = (
        f"This version has a second config, `{CONFIG_NAME}`: every battle the judges decided, "
        "as a preference pair in TRL's conversational format (`prompt`, `chosen`, `rejected`, "
        "each a list of chat messages), beside the battle's experts and vote totals. Ties, "
        "battles with no valid vote and pairs whose winning answer was cut are left out. Load "
        f"it as the snippet under *How to load this version* does, naming the config: "
        f"`load_dataset(..., \"{CONFIG_NAME}\", ...)`. The default config (`messages`) is for "
        "TRL's `SFTTrainer`, this one for its `DPOTrainer`, both without a conversion step.\n\n"
        + table)
    return CardSection("Preference pairs (DPO)", text)
