"""`battle` -> `battles`: each instruction's miner (attacker) and its scheduled defenders answer.

Defenders come from `scoring.schedule.schedule_defenders` (equal attack and defence turns, pairs met
about equally often, a deterministic function of `battle.seed`). Both sides answer through the
chat path; an answer a competitor gives to an instruction is asked once even when it fights
several battles over it. Answers cut by the length limit are kept and flagged `truncated_*`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets

from warriorcoder.builders.base import (
    Phase,
    PhaseInput,
    PhaseOutput,
    PhasePlan,
    expert_records,
    rows_dataset,
)
from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards import CardContent, CardSection, markdown_table
from warriorcoder.dataset_cards.arena_sections import battle_code_section
from warriorcoder.errors import InputDatasetError, PhaseError
from warriorcoder.generation.types import ChatRequest, GenerationResult, SamplingParams
from warriorcoder.planning import mean_text_tokens
from warriorcoder.scoring.schedule import Schedule, schedule_defenders
from warriorcoder.scoring.seeds import derive_seed, stable_id

SIDES = ("attacker", "defender")

FEATURES = datasets.Features({
    "battle_id": datasets.Value("string"),
    "instruction_id": datasets.Value("string"),
    "instruction": datasets.Value("string"),
    "kcenter_rank": datasets.Value("int64"),
    "attacker": datasets.Value("string"),
    "defender": datasets.Value("string"),
    "defender_slot": datasets.Value("int32"),
    **{
        f"{column}_{side}": datasets.Value(dtype)
        for side in SIDES
        for column, dtype in [
            ("model_id", "string"), ("model_revision", "string"), ("seed", "int64"),
            ("response", "string"), ("finish_reason", "string"), ("tokens", "int32"),
            ("truncated", "bool"),
        ]
    },
})
"""Columns of `battles`: one row per (instruction, defender)."""

REQUIRED_COLUMNS = ("id", "expert", "instruction")

PHASE = Phase(
    name="battle",
    dataset="battles",
    parent="compress",
    summary="Pairwise battles: each instruction's miner (attacker) and a scheduled defender "
    "both answer it.",
    required_columns=REQUIRED_COLUMNS,
    features=FEATURES,
    config_sections=("battle",),
    uses_experts=True,
)


def answer_request(config: ArenaConfig, expert: str, instruction_id: str,
                   instruction: str) -> ChatRequest:
    """The one request an expert answers an instruction with (same for all its battles)."""
    battle = config.battle
    seed = derive_seed("answer", battle.seed, instruction_id, expert)
    params = SamplingParams(max_new_tokens=battle.max_new_tokens,
                            temperature=battle.temperature, seed=seed)
    return ChatRequest.user(expert, instruction, params)


def _columns(rows: datasets.Dataset, experts: list[str]) -> dict[str, list[Any]]:
    """The columns of `compressed` the phase reads, checked row by row."""
    wanted = [*REQUIRED_COLUMNS, *(["kcenter_rank"] if "kcenter_rank" in rows.column_names else [])]
    data = rows.select_columns(wanted).to_dict()
    data.setdefault("kcenter_rank", [None] * len(rows))
    seen: set[str] = set()
    for row_id, expert, instruction in zip(data["id"], data["expert"], data["instruction"],
                                           strict=True):
        if row_id in seen:
            raise InputDatasetError(f"battle: `compressed` row id {row_id!r} appears twice")
        seen.add(row_id)
        if expert not in experts:
            raise InputDatasetError(
                f"battle: `compressed` row {row_id!r} was mined by {expert!r}, which is not an "
                f"expert of this arena ({experts}); add it to `experts` in the config or read a "
                "`compressed` version mined by these experts"
            )
        if not (instruction or "").strip():
            raise InputDatasetError(
                f"battle: `compressed` row {row_id!r} has an empty instruction")
    return data


@PHASE.planner
def plan(config: ArenaConfig, parent: datasets.Dataset | None, rows_in: int | None) -> PhasePlan:
    """Each competitor answers each instruction once, however many battles it fights on it."""
    rows = len(parent) if parent is not None else rows_in or 0
    per_instruction = min(config.battle.battles_per_instruction, len(config.experts) - 1)
    calls = rows * (1 + per_instruction)
    prompt = mean_text_tokens(parent, "instruction") if parent is not None else 64
    return PhasePlan(calls=calls, prompt_tokens=calls * (prompt + 8),
                     generated_tokens=calls * config.battle.max_new_tokens,
                     rows_out=rows * per_instruction)


@PHASE.builder
def build(phase_input: PhaseInput) -> PhaseOutput:
    config = phase_input.config
    rows = phase_input.parent_rows
    experts = config.expert_names
    data = _columns(rows, experts)
    battle = config.battle
    ids, attackers, instructions = data["id"], data["expert"], data["instruction"]
    ranks = data["kcenter_rank"]
    try:
        schedule = schedule_defenders(attackers, experts, battle.battles_per_instruction,
                                      seed=battle.seed)
    except ValueError as error:
        raise PhaseError(f"battle: {error}; lower battle.battles_per_instruction") from None

    requests: dict[tuple[str, str], ChatRequest] = {}
    for iid, attacker, instruction, defenders in zip(ids, attackers, instructions,
                                                     schedule.defenders, strict=True):
        for expert in (attacker, *defenders):
            requests.setdefault((expert, iid), answer_request(config, expert, iid, instruction))
    unique = list(dict.fromkeys(requests.values()))  # identical requests are sent once
    # Every answer is needed: a failed call raises GenerationFailed (after all the others).
    results = phase_input.pool.run(unique, desc="battle: answers")
    by_request = dict(zip(unique, results, strict=True))

    out: list[dict[str, Any]] = []
    for iid, attacker, instruction, rank, defenders in zip(
            ids, attackers, instructions, ranks, schedule.defenders, strict=True):
        for slot, defender in enumerate(defenders):
            row: dict[str, Any] = {
                "battle_id": stable_id("battle", iid, attacker, defender),
                "instruction_id": iid, "instruction": instruction, "kcenter_rank": rank,
                "attacker": attacker, "defender": defender, "defender_slot": slot,
            }
            for side, expert in zip(SIDES, (attacker, defender), strict=True):
                request = requests[(expert, iid)]
                row.update(_side_columns(side, request, by_request[request]))
            out.append(row)
    dataset = rows_dataset(out, features=FEATURES)
    content = CardContent(
        counts=[("instructions", len(ids)), ("battles", len(out)),
                ("answers generated", len(unique))],
        sections=[schedule_section(schedule), responses_section(out, battle.max_new_tokens),
                  battle_code_section(out)],
        experts=expert_records(phase_input),
    )
    return PhaseOutput(dataset=dataset, content=content)


def _side_columns(side: str, request: ChatRequest, result: GenerationResult) -> dict[str, Any]:
    return {
        f"model_id_{side}": result.model_id,
        f"model_revision_{side}": result.model_revision,
        f"seed_{side}": request.params.seed,
        f"response_{side}": result.text,
        f"finish_reason_{side}": result.finish_reason,
        f"tokens_{side}": result.generated_tokens,
        f"truncated_{side}": result.finish_reason == "length",
    }


def schedule_section(schedule: Schedule) -> CardSection:
    """The defender schedule: per-expert turns, the pair matrix, and any deviation, explained."""
    attacks, defences, deviation = schedule.attacks(), schedule.defences(), schedule.deviation()
    experts = list(schedule.experts)
    turns = markdown_table(
        ["expert", "instructions mined", "attacks", "defences", "defences - attacks"],
        [[e, Counter(schedule.attackers)[e], attacks[e], defences[e], f"{deviation[e]:+d}"]
         for e in experts],
    )
    pairs = schedule.pairs()
    matrix = markdown_table(
        ["attacker \\ defender", *experts],
        [[a, *("-" if a == d else pairs[(a, d)] for d in experts)] for a in experts],
    )
    text = (
        f"Each instruction's miner attacks; {schedule.battles_per_instruction} distinct "
        "defender(s) per instruction, never the attacker. The schedule is a deterministic "
        f"function of `battle.seed` = {schedule.seed}: defence and pair counts solve two small "
        "integer programs (defences as close as possible to attacks, then the least spread of "
        "pair counts per attacker and per defender), and a seeded shuffle deals the scheduled "
        "defenders to each attacker's instructions.\n\n" + turns + "\n\nBattles per ordered "
        "pair (rows attack, columns defend):\n\n" + matrix
    )
    if schedule.balanced:
        text += "\n\nBalance: every expert's defences equal its attacks within one."
    else:
        reasons = schedule.shortfalls()
        text += (
            "\n\n**Deviation from equal attack and defence turns**: the instructions make "
            "perfect balance impossible, so the defence counts above are the closest possible "
            "(least largest deviation). "
            + " ".join(f"`{e}` {why}." for e, why in reasons.items())
        )
    return CardSection("Defender schedule", text)


def responses_section(rows: list[dict[str, Any]], max_new_tokens: int) -> CardSection:
    """Per expert: answers given, mean tokens, finish reasons and length-cut answers."""
    answers: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for row in rows:
        for side in SIDES:
            expert = row[side]
            answers.setdefault(expert, {})[(row["instruction_id"], expert)] = {
                "tokens": row[f"tokens_{side}"], "reason": row[f"finish_reason_{side}"],
            }
    table = []
    for expert, given in sorted(answers.items()):
        values = list(given.values())
        reasons = Counter(v["reason"] for v in values)
        mean = sum(v["tokens"] for v in values) / len(values)
        table.append([expert, len(values), mean, reasons["length"],
                      ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))])
    truncated = sum(line[3] for line in table)
    text = (
        f"Answers cut by the length limit ({max_new_tokens} new tokens) are kept and flagged in "
        f"`truncated_attacker` / `truncated_defender`: {truncated} answer(s).\n\n"
        + markdown_table(["expert", "answers", "mean tokens", "truncated", "finish reasons"],
                         table)
    )
    return CardSection("Responses", text)
