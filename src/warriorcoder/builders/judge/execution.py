"""Execution-grounded judging (`judge.execution`): tests from uninvolved experts, both answers
run in the sandbox, one execution verdict per (battle, test author) as a votes row.

1. Each answer's code is extracted as the evaluation extracts it (`sandbox.extract_code`) and
   its public interface read (`sandbox.public_interface`).
2. Every uninvolved expert of a battle (the battle's judges: never its competitors) is asked,
   for each answer's interface, for assert tests (`scoring.test_writing`), through the pool and
   the journal. Identical (tester, instruction, interface) prompts are asked once with a seed
   derived from their content, so the order of the answers plays no part and a rerun sends
   nothing. A reply with no usable assert is asked again, then recorded invalid.
3. The battle's tests from one author are the union of those written for the two interfaces;
   each answer runs those that apply to it (`scoring.execution_verdicts.applies`), all in one
   sandboxed process, outcomes cached by content (a killed run re-runs only what had not
   finished).
4. `execution_verdict` turns the two answers' outcomes into `[[A]]`/`[[B]]`/`[[Tie]]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from warriorcoder.config import ArenaConfig, ExecutionConfig
from warriorcoder.generation.types import (
    CompletionRequest,
    GenerationResult,
    ReplyFormat,
    SamplingParams,
)
from warriorcoder.planning import estimate_tokens
from warriorcoder.scoring.execution_verdicts import (
    NOT_RUN,
    ExecutionVerdict,
    applies,
    execution_verdict,
    instruction_names,
    names_used,
)
from warriorcoder.scoring.seeds import derive_seed
from warriorcoder.scoring.tally import ATTACKER_FIRST
from warriorcoder.scoring.test_writing import (
    TEST_REPLY_END,
    ParsedTests,
    interface_names,
    parse_tests,
    render_reply_start,
    render_test_prompt,
)

if TYPE_CHECKING:
    from warriorcoder.generation import ExpertPool

SIDES = ("attacker", "defender")
OUTCOME_CACHE = "outcomes.sqlite"
"""The outcome cache's file, beside the request journal."""


@dataclass(frozen=True)
class Answer:
    """One answer as execution sees it: its code (None: no code) and interface."""

    code: str | None
    interface: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(interface_names(list(self.interface)))


@dataclass(frozen=True)
class TestTask:
    """One test-writing call: a tester, an instruction and one answer's interface."""

    tester: str
    instruction: str
    interface: tuple[str, ...]

    @property
    def reply_start(self) -> str:
        """The prefilled start of the tester's reply."""
        return render_reply_start(interface_names(list(self.interface)))


@dataclass(frozen=True)
class Written:
    """The tests of one task (None: invalid after every attempt) and the last reply (its text
    begins with the prefilled start)."""

    tests: ParsedTests | None
    result: GenerationResult
    attempts: int


@dataclass(frozen=True)
class BattleExecution:
    """One (battle, test author): the tests, each side's per-test outcomes, the verdict
    (None: the author wrote no usable test for either answer)."""

    battle: int
    author: str
    tests: tuple[str, ...]
    outcomes: dict[str, tuple[str, ...]]
    details: dict[str, tuple[str, ...]]
    verdict: ExecutionVerdict | None
    written: tuple[Written, ...]


def answer_of(response: str) -> Answer:
    """Code and interface of one response, extracted as the evaluation extracts code."""
    from warriorcoder.sandbox import extract_code, public_interface

    code = extract_code(response or "")
    if not code or not code.strip():
        return Answer(None, ())
    return Answer(code, tuple(public_interface(code)))


def test_seed(execution_seed: int, task: TestTask, attempt: int) -> int:
    """The seed of one attempt at one test-writing task: from its content alone."""
    return derive_seed("tests", execution_seed, task.tester, task.instruction,
                       list(task.interface), attempt)


def test_request(execution: ExecutionConfig, seed: int, task: TestTask, attempt: int,
                 reply: ReplyFormat) -> CompletionRequest:
    """The test-writing call: the prompt with the interface in the tester's chat template, its
    reply begun with the first assert (`TEST_REPLY_START`); greedy first, sampled retries."""
    temperature = execution.temperature
    if attempt > 0 and temperature == 0:
        temperature = execution.retry_temperature
    params = SamplingParams(max_new_tokens=execution.max_new_tokens, temperature=temperature,
                            seed=test_seed(seed, task, attempt),
                            stop=(*reply.stop, TEST_REPLY_END))
    prompt = render_test_prompt(task.instruction, "\n".join(task.interface),
                                execution.tests_per_answer)
    return CompletionRequest(task.tester, reply.prompt(prompt, task.reply_start), params)


def write_tests(pool: ExpertPool, tasks: Sequence[TestTask], execution: ExecutionConfig,
                seed: int, desc: str = "judge: tests") -> list[Written]:
    """Ask every task (retrying replies without a usable assert); results in task order."""
    done: list[Written | None] = [None] * len(tasks)
    pending = list(range(len(tasks)))
    for attempt in range(execution.max_attempts):
        if not pending:
            break
        label = desc if attempt == 0 else f"{desc} (retry {attempt})"
        results = pool.run([test_request(execution, seed, tasks[i], attempt,
                                         pool.reply_format(tasks[i].tester)) for i in pending],
                           desc=label)
        still = []
        for index, result in zip(pending, results, strict=True):
            task = tasks[index]
            if result.ok:
                result = replace(result, text=task.reply_start + result.text)
            names = interface_names(list(task.interface))
            parsed = (parse_tests(result.text, names, execution.tests_per_answer)
                      if result.ok else None)
            done[index] = Written(parsed, result, attempt + 1)
            if parsed is None:
                still.append(index)
        pending = still
    return [w for w in done if w is not None]


def outcome_cache_path(config: ArenaConfig) -> Path:
    return Path(config.generation.journal).parent / OUTCOME_CACHE


def plan_tasks(config: ArenaConfig, columns: dict[str, Sequence[Any]],
               testers: Callable[[str, str], list[str]]
               ) -> tuple[list[dict[str, Answer]], list[TestTask]]:
    """Each battle's two answers, and the distinct test-writing tasks of every battle."""
    answers: list[dict[str, Answer]] = []
    cache: dict[str, Answer] = {}
    tasks: dict[TestTask, None] = {}
    for i, instruction in enumerate(columns["instruction"]):
        sides = {}
        for side in SIDES:
            response = columns[f"response_{side}"][i] or ""
            if response not in cache:
                cache[response] = answer_of(response)
            sides[side] = cache[response]
        answers.append(sides)
        for tester in testers(columns["attacker"][i], columns["defender"][i]):
            for side in SIDES:
                if sides[side].interface:
                    tasks[TestTask(tester, instruction, sides[side].interface)] = None
    return answers, list(tasks)


def count_plan(config: ArenaConfig, columns: dict[str, Sequence[Any]],
               testers: Callable[[str, str], list[str]]) -> tuple[int, int, int]:
    """(test-writing calls, executions upper bound, prompt tokens) for `--dry-run`: an
    execution is one answer against one test."""
    answers, tasks = plan_tasks(config, columns, testers)
    calls = len(tasks)
    prompt = sum(estimate_tokens(render_test_prompt(t.instruction, "\n".join(t.interface),
                                                    config.judge.execution.tests_per_answer))
                 for t in tasks)
    per = config.judge.execution.tests_per_answer
    executions = 0
    for i, sides in enumerate(answers):
        authors = len(testers(columns["attacker"][i], columns["defender"][i]))
        written = sum(bool(a.interface) for a in sides.values())
        executions += 2 * authors * written * per
    return calls, executions, prompt


def judge_by_execution(config: ArenaConfig, pool: ExpertPool,
                       columns: dict[str, Sequence[Any]],
                       testers: Callable[[str, str], list[str]],
                       *, workers: int | None = None) -> list[BattleExecution]:
    """Tests, outcomes and verdicts of every (battle, uninvolved expert), in battle order."""
    from warriorcoder.sandbox import Limits, OutcomeCache, detect_isolation, run_many

    execution = config.judge.execution
    answers, tasks = plan_tasks(config, columns, testers)
    written = dict(zip(tasks, write_tests(pool, tasks, execution, config.judge.seed),
                       strict=True))
    plans: list[tuple[int, str, tuple[str, ...], dict[str, list[int]], tuple[Written, ...]]] = []
    jobs: dict[tuple[str | None, tuple[str, ...]], int] = {}
    for i, instruction in enumerate(columns["instruction"]):
        sides = answers[i]
        required = instruction_names(instruction)
        names = {n for a in sides.values() for n in a.names}
        for tester in testers(columns["attacker"][i], columns["defender"][i]):
            mine = tuple(written[TestTask(tester, instruction, a.interface)]
                         for a in sides.values() if a.interface)
            tests = tuple(dict.fromkeys(t for w in mine if w.tests for t in w.tests.tests))
            picks = {side: [k for k, test in enumerate(tests)
                            if applies(names_used(test, names), sides[side].names, required)]
                     for side in SIDES}
            for side in SIDES:
                key = (sides[side].code, tuple(tests[k] for k in picks[side]))
                jobs.setdefault(key, len(jobs))
            plans.append((i, tester, tests, picks, mine))
    limits = Limits(test_time_s=execution.test_time_s, memory_bytes=execution.memory_mb << 20)
    isolation = detect_isolation()
    cache_path = outcome_cache_path(config)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(jobs)
    with OutcomeCache(cache_path) as cache:
        results = run_many([(code, list(tests)) for code, tests in keys], limits=limits,
                           isolation=isolation, cache=cache, workers=workers)
    by_job = dict(zip(keys, results, strict=True))
    out = []
    for i, tester, tests, picks, mine in plans:
        sides = answers[i]
        outcomes: dict[str, tuple[str, ...]] = {}
        details: dict[str, tuple[str, ...]] = {}
        for side in SIDES:
            ran = by_job[(sides[side].code, tuple(tests[k] for k in picks[side]))]
            status = [NOT_RUN] * len(tests)
            detail = [""] * len(tests)
            for k, outcome in zip(picks[side], ran, strict=True):
                status[k], detail[k] = outcome.status, outcome.detail
            outcomes[side], details[side] = tuple(status), tuple(detail)
        verdict = None  # the author wrote no usable test for either answer: invalid
        if tests or not mine:  # (neither answer has code to test: a tie)
            verdict = execution_verdict(outcomes["attacker"], outcomes["defender"],
                                        execution.discount_unpassed)
        out.append(BattleExecution(i, tester, tests, outcomes, details, verdict, mine))
    return out


EXECUTION_FEATURES = {
    "kind": datasets.Value("string"),
    "tests": datasets.List(datasets.Value("string")),
    "test_outcomes_attacker": datasets.List(datasets.Value("string")),
    "test_outcomes_defender": datasets.List(datasets.Value("string")),
    "test_details_attacker": datasets.List(datasets.Value("string")),
    "test_details_defender": datasets.List(datasets.Value("string")),
    "tests_passed_attacker": datasets.Value("int32"),
    "tests_counted_attacker": datasets.Value("int32"),
    "tests_passed_defender": datasets.Value("int32"),
    "tests_counted_defender": datasets.Value("int32"),
    "tests_discounted": datasets.Value("int32"),
}
"""The votes columns added when `judge.execution` is on: `kind` (`llm` or `execution`); for
execution rows the author's tests (the `judge` column names the author), each answer's
per-test outcome (pass, fail, error, timeout, no_code, not_applicable) and detail, and the
counts behind the verdict. LLM rows leave them empty."""

LLM_EXTRAS: dict[str, Any] = {"kind": "llm", "tests": [], "test_outcomes_attacker": [],
                              "test_outcomes_defender": [], "test_details_attacker": [],
                              "test_details_defender": [], "tests_passed_attacker": None,
                              "tests_counted_attacker": None, "tests_passed_defender": None,
                              "tests_counted_defender": None, "tests_discounted": None}


def execution_rows(config: ArenaConfig, pool: ExpertPool, columns: dict[str, Sequence[Any]],
                   testers: Callable[[str, str], list[str]]) -> list[dict[str, Any]]:
    """The votes rows of kind `execution`, one per (battle, uninvolved expert), in the votes
    schema (the attacker is A; `order` is `attacker_first`; an author whose replies held no
    usable test gives an invalid verdict, its last reply kept as the `judgement`)."""
    rows = []
    for run in judge_by_execution(config, pool, columns, testers):
        i = run.battle
        last = run.written[-1] if run.written else None
        info = pool.info(run.author)
        verdict = run.verdict
        judgement = verdict.summary() if verdict else (
            last.result.text if last and last.result.ok else (last.result.error or "")
            if last else "")
        rows.append({
            "battle_id": columns["battle_id"][i], "instruction_id": columns["instruction_id"][i],
            "attacker": columns["attacker"][i], "defender": columns["defender"][i],
            "judge": run.author,
            "judge_model_id": last.result.model_id if last else info.model_id,
            "judge_model_revision": last.result.model_revision if last else info.model_revision,
            "order": ATTACKER_FIRST, "order_seed": None, "seed": None,
            "verdict": verdict.verdict if verdict else None,
            "winner": verdict.winner if verdict else "invalid",
            "judgement": judgement,
            "finish_reason": last.result.finish_reason if last else None,
            "attempts": max((w.attempts for w in run.written), default=0),
            "instruction": columns["instruction"][i],
            "response_attacker": columns["response_attacker"][i],
            "response_defender": columns["response_defender"][i],
            "truncated_attacker": bool(columns["truncated_attacker"][i]),
            "truncated_defender": bool(columns["truncated_defender"][i]),
            "reasked": False,
            "kind": "execution", "tests": list(run.tests),
            "test_outcomes_attacker": list(run.outcomes["attacker"]),
            "test_outcomes_defender": list(run.outcomes["defender"]),
            "test_details_attacker": list(run.details["attacker"]),
            "test_details_defender": list(run.details["defender"]),
            "tests_passed_attacker": verdict.attacker.passed if verdict else None,
            "tests_counted_attacker": verdict.attacker.counted if verdict else None,
            "tests_passed_defender": verdict.defender.passed if verdict else None,
            "tests_counted_defender": verdict.defender.counted if verdict else None,
            "tests_discounted": verdict.discounted if verdict else None,
        })
    return rows


PLAN_SAMPLE = 2000
"""Battles whose answers are parsed to plan test writing; larger parents are scaled up."""


def plan_execution(config: ArenaConfig, parent: datasets.Dataset | None, battles: int,
                   testers: Callable[[str, str], list[str]]) -> tuple[int, int, int, int]:
    """(test-writing calls, prompt tokens, generated tokens, executions) of a judge phase with
    `judge.execution` on; an execution is one answer run against one test. From a sample of
    the parent's answers (interfaces deduplicated as the phase does), else from the config:
    one call per (battle, uninvolved expert, answer), at most `tests_per_answer` tests each."""
    execution = config.judge.execution
    per = execution.tests_per_answer
    if parent is not None and len(parent):
        sample = parent.select(range(min(len(parent), PLAN_SAMPLE)))
        columns = sample.select_columns(["instruction", "attacker", "defender",
                                         "response_attacker", "response_defender"]).to_dict()
        calls, executions, prompt = count_plan(config, columns, testers)
        scale = len(parent) / len(sample)
        calls, executions, prompt = (round(calls * scale), round(executions * scale),
                                     round(prompt * scale))
    else:
        allowed = len(config.judge.judges or config.expert_names)
        calls = battles * max(allowed - 2, 0) * 2
        executions = calls * 2 * per
        prompt = calls * (estimate_tokens(render_test_prompt("", "", per)) + 64
                          + config.battle.max_new_tokens // 4)
    return calls, prompt, calls * execution.max_new_tokens, executions
