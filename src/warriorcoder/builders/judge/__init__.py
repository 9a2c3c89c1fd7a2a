"""`judge` -> `votes`: every uninvolved expert votes on every battle (paper appendix C).

Judges are the experts (of `judge.judges`, default all) that are neither the attacker nor the
defender. Each sees the paper's Table 7 prompt with the two answers, names withheld, in an
order drawn per (battle, judge) from `judge.seed` (column `order_seed`); `both_orders` asks
once per order. The verdict is parsed strictly; a reply without one is asked again with a new
seed up to `max_attempts` times, then recorded `invalid`. `constrained_verdicts` asks guided
decoding (TGI's `grammar`, or the local backend's regex sampler) for a reply ending in a verdict.

Position bias: a judge whose first-shown share departs from 0.5 (exact binomial test,
Bonferroni over the judges, `judge.bias_confidence`) is flagged on the card and handled by
`judge.bias_policy`; under `reask` its votes are asked again in the other order (rows with
`reasked` true) and each pair counts as one verdict, a tie where the two disagree.

Part of this phase: `execution.py`, execution-grounded judging (`judge.execution`): tests
written by uninvolved experts, run on both answers in the sandbox, one verdict row per author.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from warriorcoder.builders.base import (
    Phase,
    PhaseError,
    PhaseInput,
    PhaseOutput,
    PhasePlan,
    expert_records,
    rows_dataset,
)
from warriorcoder.builders.judge.execution import (
    EXECUTION_FEATURES,
    LLM_EXTRAS,
    execution_rows,
    plan_execution,
)
from warriorcoder.builders.select import standings_options
from warriorcoder.config import ArenaConfig, JudgeConfig
from warriorcoder.dataset_cards import CardContent, CardSection
from warriorcoder.dataset_cards.arena_figures import arena_figure_sections
from warriorcoder.dataset_cards.arena_sections import (
    judges_section,
    ratings_section,
    targets_section,
    win_rate_section,
)
from warriorcoder.dataset_cards.execution_sections import execution_counts, execution_section
from warriorcoder.generation.parsed import Parsed, generate_parsed
from warriorcoder.generation.types import ChatRequest, SamplingParams
from warriorcoder.planning import estimate_tokens, shortfall_note
from warriorcoder.scoring.execution_verdicts import RECORD_COLUMNS, split_kinds
from warriorcoder.scoring.seeds import derive_seed
from warriorcoder.scoring.standings import standings
from warriorcoder.scoring.tally import ATTACKER_FIRST, DEFENDER_FIRST, judge_bias_tests
from warriorcoder.scoring.verdicts import (
    Verdict,
    map_verdict,
    parse_verdict,
    render_judge_prompt,
    verdict_regex,
)

FEATURES = datasets.Features({
    "battle_id": datasets.Value("string"),
    "instruction_id": datasets.Value("string"),
    "attacker": datasets.Value("string"),
    "defender": datasets.Value("string"),
    "judge": datasets.Value("string"),
    "judge_model_id": datasets.Value("string"),
    "judge_model_revision": datasets.Value("string"),
    "order": datasets.Value("string"),
    "order_seed": datasets.Value("int64"),
    "seed": datasets.Value("int64"),
    "verdict": datasets.Value("string"),
    "winner": datasets.Value("string"),
    "judgement": datasets.Value("string"),
    "finish_reason": datasets.Value("string"),
    "attempts": datasets.Value("int32"),
    "instruction": datasets.Value("string"),
    "response_attacker": datasets.Value("string"),
    "response_defender": datasets.Value("string"),
    "truncated_attacker": datasets.Value("bool"),
    "truncated_defender": datasets.Value("bool"),
    "reasked": datasets.Value("bool"),
})
"""Columns of `votes`: one row per (battle, judge, order). `verdict` is the positional A/B/Tie
(null when invalid); `winner` maps it back: attacker, defender, tie or invalid. `reasked`: a
second vote in the other order for a position-biased judge (`judge.bias_policy: reask`)."""

REQUIRED_COLUMNS = ("battle_id", "instruction_id", "instruction", "attacker", "defender",
                    "response_attacker", "response_defender")

PHASE = Phase(
    name="judge",
    dataset="votes",
    parent="battle",
    summary="Votes of the uninvolved experts on each battle, with the order of the answers "
    "shuffled per vote and the competitors' names withheld.",
    required_columns=REQUIRED_COLUMNS,
    features=FEATURES,
    # Only what changes the votes: the card's preview of select's targets (with this config's
    # `select` settings, stated in its sections) is no reason to ask the judges again.
    config_sections=("judge",),
    uses_experts=True,
    task_categories=("text-classification",),
)
CHUNK = 4096
logger = logging.getLogger(__name__)
"""Votes asked per round trip of `generate_parsed` (bounds the prompts held in memory)."""


@dataclass(frozen=True)
class Vote:
    """One vote to ask: a battle (row of `battles`), a judge and the order shown."""

    battle: int
    judge: str
    order: str
    order_seed: int


def vote_order_seed(judge: JudgeConfig, battle_id: str, judge_name: str) -> int:
    """The recorded seed that draws the order of one (battle, judge): even = attacker first."""
    return derive_seed("order", judge.seed, battle_id, judge_name)


def vote_seed(judge: JudgeConfig, battle_id: str, judge_name: str, order: str,
              attempt: int) -> int:
    """The sampling seed of one attempt at one vote (a retry gets a new one)."""
    return derive_seed("judge", judge.seed, battle_id, judge_name, order, attempt)


def vote_request(judge: JudgeConfig, judge_name: str, instruction: str, first: str,
                 second: str, *, seed: int, attempt: int) -> ChatRequest:
    """One judge call: the Table 7 prompt with `first` shown as A, the judge's sampling (a
    greedy judge retries at `retry_temperature`) and, if constrained, the verdict grammar."""
    grammar = None
    if judge.constrained_verdicts:
        explanation = max(1, min(1000, judge.max_new_tokens - 8))
        grammar = {"type": "regex", "value": verdict_regex(explanation)}
    temperature = judge.temperature
    if attempt > 0 and temperature == 0:
        temperature = judge.retry_temperature  # a greedy judge would repeat itself
    params = SamplingParams(max_new_tokens=judge.max_new_tokens, temperature=temperature,
                            seed=seed, grammar=grammar)
    return ChatRequest.user(judge_name, render_judge_prompt(instruction, first, second), params)


def eligible_judges(config: ArenaConfig, attacker: str, defender: str) -> list[str]:
    """The judges of one battle: allowed experts that are neither of its competitors."""
    allowed = config.judge.judges or config.expert_names
    return [j for j in allowed if j not in (attacker, defender)]


def plan_votes(config: ArenaConfig, battles: datasets.Dataset) -> list[Vote]:
    """Every vote to ask, in battle order; raises PhaseError if a battle has no judge."""
    votes, lonely = [], set()
    data = battles.select_columns(["battle_id", "attacker", "defender"]).to_dict()
    for index, (battle_id, attacker, defender) in enumerate(zip(
            data["battle_id"], data["attacker"], data["defender"], strict=True)):
        judges = eligible_judges(config, attacker, defender)
        if not judges:
            lonely.add((attacker, defender))
        for judge in judges:
            seed = vote_order_seed(config.judge, battle_id, judge)
            if config.judge.both_orders:
                orders = [ATTACKER_FIRST, DEFENDER_FIRST]
            else:
                orders = [ATTACKER_FIRST if seed % 2 == 0 else DEFENDER_FIRST]
            votes += [Vote(index, judge, order, seed) for order in orders]
    if lonely:
        raise PhaseError(
            f"judge: no expert may judge the battles of {sorted(lonely)} (a competitor never "
            f"judges its own battle; judge.judges = {config.judge.judges}); allow more judges"
        )
    return votes


@PHASE.planner
def plan(config: ArenaConfig, parent: datasets.Dataset | None, rows_in: int | None) -> PhasePlan:
    """One vote per (battle, uninvolved judge, order shown) on the first attempt."""
    battles = len(parent) if parent is not None else rows_in or 0
    if parent is not None:
        votes = len(plan_votes(config, parent))
        data = parent.select(range(min(len(parent), 2000))).select_columns(
            ["instruction", "response_attacker", "response_defender"]).to_dict()
        texts = zip(*data.values(), strict=True)
        sizes = [sum(estimate_tokens(t or "") for t in row) for row in texts]
        prompt = round(sum(sizes) / max(len(sizes), 1))
    else:
        allowed = len(config.judge.judges or config.expert_names)
        votes = battles * max(allowed - 2, 0) * (2 if config.judge.both_orders else 1)
        prompt = 64 + 2 * config.battle.max_new_tokens // 2
    prompt += estimate_tokens(render_judge_prompt("", "", ""))
    calls, prompt_tokens, generated = votes, votes * prompt, votes * config.judge.max_new_tokens
    rows, notes = votes, []
    mode = config.judge.execution.mode
    if mode != "off":
        tests, test_prompt, test_generated, executions = plan_execution(
            config, parent, battles, lambda a, d: eligible_judges(config, a, d))
        allowed = len(config.judge.judges or config.expert_names)
        calls, prompt_tokens, generated = (calls + tests, prompt_tokens + test_prompt,
                                           generated + test_generated)
        rows += battles * max(allowed - 2, 0)
        notes.append(f"judge.execution {mode}: {tests} test-writing calls (included above), "
                     f"at most {executions} executions (answer x test) in the sandbox")
    return PhasePlan(calls=calls, prompt_tokens=prompt_tokens, generated_tokens=generated,
                     rows_out=rows,
                     notes=(f"retries: at most {config.judge.max_attempts - 1} more per "
                            "unparsable verdict",
                            *(["bias_policy reask: up to one more call per vote of a judge "
                               "flagged as position-biased"]
                              if config.judge.bias_policy == "reask" else []), *notes))


def reask_plan(judge: JudgeConfig, plan: Sequence[Vote], rows: Sequence[Mapping[str, Any]]
               ) -> list[Vote]:
    """Under `bias_policy: reask` (and one order per vote), every vote of a judge flagged as
    position-biased by `rows` (the first pass), asked again in the other order."""
    if judge.bias_policy != "reask" or judge.both_orders:
        return []
    columns = {key: [row[key] for row in rows] for key in ("judge", "battle_id", "verdict",
                                                             "order")}
    tests = judge_bias_tests(columns, judge.bias_confidence)
    flagged = {name for name, test in tests.items() if test.flagged}
    other = {ATTACKER_FIRST: DEFENDER_FIRST, DEFENDER_FIRST: ATTACKER_FIRST}
    return [Vote(v.battle, v.judge, other[v.order], v.order_seed) for v in plan
            if v.judge in flagged]


@PHASE.builder
def build(phase_input: PhaseInput) -> PhaseOutput:
    config = phase_input.config
    battles = phase_input.parent_rows
    judge = config.judge
    plan = plan_votes(config, battles)
    flags = [c for c in ("truncated_attacker", "truncated_defender") if c in battles.column_names]
    columns = battles.select_columns([*REQUIRED_COLUMNS, *flags]).to_dict()
    for flag in ("truncated_attacker", "truncated_defender"):
        columns.setdefault(flag, [False] * len(battles))

    def request(vote: Vote, attempt: int) -> ChatRequest:
        i = vote.battle
        answers = (columns["response_attacker"][i], columns["response_defender"][i])
        if vote.order == DEFENDER_FIRST:
            answers = answers[::-1]
        seed = vote_seed(judge, columns["battle_id"][i], vote.judge, vote.order, attempt)
        return vote_request(judge, vote.judge, columns["instruction"][i], *answers, seed=seed,
                            attempt=attempt)

    def ask(votes: list[Vote], desc: str) -> list[Parsed[Verdict]]:
        outcomes: list[Parsed[Verdict]] = []
        chunks = range(0, len(votes), CHUNK)
        for number, start in enumerate(chunks, 1):
            label = desc if len(chunks) == 1 else f"{desc} {number}/{len(chunks)}"
            outcomes += generate_parsed(phase_input.pool, votes[start:start + CHUNK], request,
                                        parse_verdict, max_attempts=judge.max_attempts,
                                        desc=label)
        return outcomes

    rows = [_row(judge, vote, outcome, columns)
            for vote, outcome in zip(plan, ask(plan, "judge"), strict=True)]
    reasked = reask_plan(judge, plan, rows)
    if reasked:
        logger.info("judge: re-asking %d votes of position-biased judge(s) %s with the answers "
                    "swapped (judge.bias_policy: reask)", len(reasked),
                    sorted({v.judge for v in reasked}))
        rows += [{**_row(judge, vote, outcome, columns), "reasked": True}
                 for vote, outcome in zip(reasked, ask(reasked, "judge (re-ask)"), strict=True)]
    features = FEATURES
    if judge.execution.mode != "off":  # the same uninvolved experts write tests; off: the paper
        rows = [{**row, **LLM_EXTRAS} for row in rows] + execution_rows(
            config, phase_input.pool, columns,
            lambda attacker, defender: eligible_judges(config, attacker, defender))
        features = datasets.Features({**FEATURES, **EXECUTION_FEATURES})
    dataset = rows_dataset(rows, features=features)
    cut = {b: (bool(a), bool(d)) for b, a, d in zip(
        columns["battle_id"], columns["truncated_attacker"], columns["truncated_defender"],
        strict=True)}
    content = _card(config, dataset, len(battles), len(reasked), cut)
    content.experts = expert_records(phase_input)
    return PhaseOutput(dataset=dataset, content=content)


def _card(config: ArenaConfig, dataset: datasets.Dataset, battles: int, reasked: int,
          cut: Mapping[str, tuple[bool, bool]]) -> CardContent:
    """The votes card: counts, the judges, and a preview of the standings `select` makes of
    these votes with this config's `select` settings."""
    kind = list(RECORD_COLUMNS) if "kind" in dataset.column_names else []
    every = dataset.select_columns(["battle_id", "instruction_id", "attacker", "defender",
                                    "judge", "order", "verdict", "winner", "attempts",
                                    *kind]).to_dict()
    options = standings_options(config)
    preview = standings(every, config.expert_names, options, cut, stability=False)
    votes, _ = split_kinds(every)  # the LLM votes: the judges' table
    tallies, experts = preview.tallies, preview.experts
    invalid = sum(winner == "invalid" for winner in votes["winner"])
    judged = sum(t.judged for t in tallies)
    unjudged_note = shortfall_note(judged, len(tallies), "judge",
                                   "judge.max_attempts or use judge.constrained_verdicts "
                                   "(battles without a valid vote carry no outcome)")
    if unjudged_note:
        logger.warning(unjudged_note)
    return CardContent(
        counts=[("battles", battles), ("votes", len(votes["battle_id"])),
                *([("of them re-asked with the answers swapped", reasked)] if reasked else []),
                ("valid votes", len(votes["battle_id"]) - invalid),
                *execution_counts(dataset),
                ("judged battles", judged)],
        sections=[
            *([CardSection("Shortfall", unjudged_note + ".")] if unjudged_note else []),
            *([execution_section(dataset, config)] if kind else []),
            judges_section(votes, tallies, config.judge.both_orders or bool(reasked),
                           preview.count),
            ratings_section(tallies, preview.ratings, experts, options),
            win_rate_section(tallies, experts),
            *arena_figure_sections(votes, preview.ratings, experts),
            targets_section([t for t in preview.targets if options.allow_truncated_targets
                             or not t.all_truncated], tallies, experts, options.alpha,
                            config.select.keep_unjudged,
                            note="As `select` would choose with this config's `select` "
                                 "settings. "),
        ],
    )


def _row(judge: JudgeConfig, vote: Vote, outcome: Parsed[Verdict],
         columns: dict[str, Sequence[Any]]) -> dict[str, Any]:
    i = vote.battle
    result = outcome.result
    return {
        "battle_id": columns["battle_id"][i],
        "instruction_id": columns["instruction_id"][i],
        "attacker": columns["attacker"][i],
        "defender": columns["defender"][i],
        "judge": vote.judge,
        "judge_model_id": result.model_id,
        "judge_model_revision": result.model_revision,
        "order": vote.order,
        "order_seed": vote.order_seed,
        "seed": vote_seed(judge, columns["battle_id"][i], vote.judge, vote.order,
                          outcome.attempts - 1),
        "verdict": outcome.value,
        "winner": map_verdict(outcome.value, vote.order == ATTACKER_FIRST),
        "judgement": result.text if result.ok else (result.error or ""),
        "finish_reason": result.finish_reason,
        "attempts": outcome.attempts,
        "instruction": columns["instruction"][i],
        "response_attacker": columns["response_attacker"][i],
        "response_defender": columns["response_defender"][i],
        "truncated_attacker": bool(columns["truncated_attacker"][i]),
        "truncated_defender": bool(columns["truncated_defender"][i]),
        "reasked": False,
    }
