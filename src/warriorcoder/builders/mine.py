"""`mine` -> `mined_raw`: Magpie-style instruction mining from each expert's pre-query prefix.

Every expert completes its own chat-template prefix (cut where the user's text would start,
followed by `mine.instruction_start` when one is set) under each sampling config (temperature x
top_p) `samples_per_config` times, each call with its own recorded seed; the start and the text
up to the first end-of-user-turn stop are the instruction.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
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
from warriorcoder.errors import PhaseError
from warriorcoder.generation.types import CompletionRequest, GenerationResult, SamplingParams
from warriorcoder.planning import estimate_tokens, planned_mining_calls, planned_mining_samples
from warriorcoder.scoring.seeds import derive_seed, stable_id

FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "expert": datasets.Value("string"),
    "model_id": datasets.Value("string"),
    "model_revision": datasets.Value("string"),
    "temperature": datasets.Value("float64"),
    "top_p": datasets.Value("float64"),
    "sample_index": datasets.Value("int32"),
    "seed": datasets.Value("int64"),
    "instruction": datasets.Value("string"),
    "raw_output": datasets.Value("string"),
    "finish_reason": datasets.Value("string"),
    "generated_tokens": datasets.Value("int32"),
})
"""Columns of `mined_raw`."""

PHASE = Phase(
    name="mine",
    dataset="mined_raw",
    parent=None,
    summary="Instructions mined from each expert's own chat template (Magpie-style pre-query "
    "completion) under 9 sampling configs.",
    features=FEATURES,
    config_sections=("mine",),
    uses_experts=True,
)

REJECT_LENGTH = "cut by the length limit"
REJECT_EMPTY = "empty instruction"
REJECT_ERROR = "failed call"


@dataclass(frozen=True)
class MiningSlot:
    """One mining call: which expert, sampling config and sample number, and its seed."""

    expert: str
    temperature: float
    top_p: float
    index: int
    seed: int


def mining_slots(config: ArenaConfig) -> list[MiningSlot]:
    """Every mining call of the config, in order, with seeds distinct within each expert.

    Seeds are `derive_seed(mine.seed, expert, temperature, top_p, index)`; in the rare case of
    a collision within an expert the seed is derived again with a bump, so none repeats."""
    mine = config.mine
    samples = planned_mining_samples(config)
    slots = []
    for expert in config.expert_names:
        used: set[int] = set()
        for temperature in mine.temperatures:
            for top_p in mine.top_ps:
                for index in range(samples):
                    seed = derive_seed(mine.seed, expert, temperature, top_p, index)
                    bump = 0
                    while seed in used:
                        bump += 1
                        seed = derive_seed(mine.seed, expert, temperature, top_p, index, bump)
                    used.add(seed)
                    slots.append(MiningSlot(expert, temperature, top_p, index, seed))
    return slots


def extract_instruction(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string (the end of the user turn), stripped."""
    cut = min((pos for s in stop if s and (pos := text.find(s)) >= 0), default=len(text))
    return text[:cut].strip()


def rejection(result: GenerationResult, instruction: str, start: str = "") -> str | None:
    """Why a completion yields no instruction, or None when it does (an instruction that is
    only `start`, which the expert did not go on from, is empty)."""
    if not result.ok:
        return REJECT_ERROR
    if result.finish_reason == "length":
        return REJECT_LENGTH
    if not instruction or instruction == start.strip():
        return REJECT_EMPTY
    return None


@PHASE.planner
def plan(config: ArenaConfig, parent: datasets.Dataset | None, rows_in: int | None) -> PhasePlan:
    """One completion per mining slot; each slot yields at most one instruction."""
    calls = planned_mining_calls(config)
    prefix = (estimate_tokens(config.mine.system_prompt or "") + 16
              + estimate_tokens(config.mine.instruction_start))
    survival = config.mine.survival
    return PhasePlan(calls=calls, prompt_tokens=calls * prefix,
                     generated_tokens=calls * config.mine.max_new_tokens,
                     rows_out=math.floor(calls * survival.extraction),
                     notes=(f"samples per (expert, sampling config): "
                            f"{planned_mining_samples(config)}"
                            + (" (auto: sized for compress.size at the assumed mine.survival "
                               "rates)" if config.mine.samples_per_config == "auto" else ""),))


@PHASE.builder
def build(phase_input: PhaseInput) -> PhaseOutput:
    config = phase_input.config
    mine = config.mine
    pool = phase_input.pool
    start = mine.instruction_start
    prequeries = {name: pool.mining_prefix(name, mine.system_prompt)
                  for name in config.expert_names}
    infos = {name: pool.info(name) for name in config.expert_names}
    slots = mining_slots(config)
    requests = [
        CompletionRequest(
            expert=slot.expert,
            prompt=prequeries[slot.expert].prompt_without_bos + start,
            params=SamplingParams(
                max_new_tokens=mine.max_new_tokens,
                temperature=slot.temperature,
                top_p=slot.top_p,
                seed=slot.seed,
                stop=tuple(prequeries[slot.expert].stop),
            ),
        )
        for slot in slots
    ]
    results = pool.run(requests, desc="mine")

    rows: list[dict[str, Any]] = []
    rejected: list[tuple[MiningSlot, str, GenerationResult]] = []
    for slot, result in zip(slots, results, strict=True):
        instruction = extract_instruction(start + result.text, prequeries[slot.expert].stop)
        reason = rejection(result, instruction, start)
        if reason is not None:
            rejected.append((slot, reason, result))
            continue
        info = infos[slot.expert]
        revision = result.model_revision or info.model_revision
        rows.append({
            "id": stable_id(slot.expert, revision, slot.temperature, slot.top_p, slot.seed,
                            *([start] if start else [])),
            "expert": slot.expert,
            "model_id": result.model_id or info.model_id,
            "model_revision": revision,
            "temperature": slot.temperature,
            "top_p": slot.top_p,
            "sample_index": slot.index,
            "seed": slot.seed,
            "instruction": instruction,
            "raw_output": result.text,
            "finish_reason": result.finish_reason,
            "generated_tokens": result.generated_tokens,
        })

    reasons = Counter(reason for _, reason, _ in rejected)
    if not rows:
        raise PhaseError(
            f"every one of the {len(slots)} mining completions was rejected "
            f"({', '.join(f'{n} {r}' for r, n in reasons.items())}); if they were cut by the "
            "length limit raise mine.max_new_tokens, if empty check the experts' chat templates"
        )
    dataset = rows_dataset(rows, features=FEATURES)
    counts = [("requests", len(slots))]
    remaining = len(slots) - reasons[REJECT_ERROR]
    if reasons[REJECT_ERROR]:
        counts.append(("completed", remaining))
    counts.append(("not cut by the length limit", remaining - reasons[REJECT_LENGTH]))
    counts.append(("mined instructions (non-empty)", len(dataset)))
    content = CardContent(
        counts=counts,
        sections=[
            _configs_section(config, slots, rows),
            _rejections_section(rejected, len(slots)),
            _prefix_section(prequeries, start),
        ],
        experts=expert_records(phase_input),
    )
    return PhaseOutput(dataset=dataset, content=content)


def _configs_section(
    config: ArenaConfig, slots: list[MiningSlot], rows: list[dict[str, Any]]
) -> CardSection:
    asked = Counter((s.expert, s.temperature, s.top_p) for s in slots)
    kept = Counter((r["expert"], r["temperature"], r["top_p"]) for r in rows)
    tokens: dict[tuple[str, float, float], list[int]] = {}
    for r in rows:
        tokens.setdefault((r["expert"], r["temperature"], r["top_p"]), []).append(
            r["generated_tokens"])
    table = []
    for key, n in asked.items():
        lengths = tokens.get(key, [])
        mean_tokens = sum(lengths) / len(lengths) if lengths else 0.0
        table.append([*key, n, kept[key], mean_tokens])
    per_expert = Counter(r["expert"] for r in rows)
    distinct = len({r["instruction"] for r in rows})
    mine = config.mine
    text = (
        f"{len(mine.temperatures)} temperatures x {len(mine.top_ps)} top-p values = "
        f"{len(mine.temperatures) * len(mine.top_ps)} sampling configs, "
        f"{planned_mining_samples(config)} samples each"
        + (" (`samples_per_config: auto`)" if mine.samples_per_config == "auto" else "")
        + f", at most {mine.max_new_tokens} new tokens. "
        "Every call has its own seed (column `seed`); top-p 1.0 means no nucleus cut.\n\n"
        + markdown_table(["expert", "instructions"], sorted(per_expert.items()))
        + f"\n\nDistinct instruction texts: {distinct} of {len(rows)}.\n\n"
        + markdown_table(
            ["expert", "temperature", "top_p", "requests", "instructions", "mean tokens"], table)
    )
    return CardSection("Sampling configs", text)


def _rejections_section(
    rejected: list[tuple[MiningSlot, str, GenerationResult]], total: int
) -> CardSection:
    if not rejected:
        return CardSection("Rejected completions", f"None of the {total} completions was rejected.")
    counts = Counter((slot.expert, reason) for slot, reason, _ in rejected)
    examples = [
        [slot.expert, slot.temperature, slot.top_p, slot.seed, reason, result.generated_tokens,
         (result.error or result.text)[:120]]
        for slot, reason, result in rejected[:10]
    ]
    text = (
        f"{len(rejected)} of {total} completions gave no instruction: cut by the length limit "
        "(the user turn never ended), empty, or failed.\n\n"
        + markdown_table(["expert", "reason", "completions"],
                         [[e, r, n] for (e, r), n in sorted(counts.items())])
        + "\n\nExamples:\n\n"
        + markdown_table(["expert", "temperature", "top_p", "seed", "reason", "tokens",
                          "output (start)"], examples)
    )
    return CardSection("Rejected completions", text)


def _prefix_section(prequeries: dict[str, Any], start: str) -> CardSection:
    rows = [[name, repr(pq.prefix)[:200], ", ".join(repr(s) for s in pq.stop)]
            for name, pq in prequeries.items()]
    begun = (
        f" Every prompt then ends in `mine.instruction_start` = {start!r}, so every instruction "
        "begins with it and the expert writes the rest of the user turn (beyond the paper, "
        "which leaves the whole user turn to the expert; column `raw_output` holds only what "
        "the expert wrote)." if start else "")
    return CardSection(
        "Pre-query prefixes",
        "What each expert was asked to complete (its chat template up to the user's text) "
        f"and where its user turn ends.{begun}\n\n"
        + markdown_table(["expert", "prefix", "stop strings"], rows),
    )
