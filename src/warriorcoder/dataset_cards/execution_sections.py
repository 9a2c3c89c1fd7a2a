"""Card sections for execution-grounded judging (`judge.execution`): the votes card's test
record per expert, and sft_final's targets against the answers that lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import datasets

from warriorcoder.dataset_cards.card import CardSection, markdown_table
from warriorcoder.scoring.execution_verdicts import (
    RECORD_COLUMNS,
    AnswerRecord,
    answer_records,
    split_kinds,
)
from warriorcoder.scoring.test_writing import TEST_REPLY_START, TEST_WRITING_PROMPT

EXECUTION_COLUMNS = ("battle_id", "instruction_id", "attacker", "defender", "judge", "winner",
                     *RECORD_COLUMNS)


def execution_columns(votes: datasets.Dataset) -> dict[str, list[Any]]:
    """The execution rows' columns of a votes table (empty lists without execution)."""
    if "kind" not in votes.column_names:
        return {c: [] for c in EXECUTION_COLUMNS}
    return split_kinds(votes.select_columns(list(EXECUTION_COLUMNS)).to_dict())[1]


def execution_counts(votes: datasets.Dataset) -> list[tuple[str, int]]:
    """The card's counts of execution verdicts (none without execution)."""
    runs = execution_columns(votes)
    if not runs["battle_id"]:
        return []
    invalid = sum(w == "invalid" for w in runs["winner"])
    return [("execution verdicts", len(runs["battle_id"])),
            ("of them invalid (no usable test written)", invalid)]


def _expert_table(records: Mapping[tuple[str, str], AnswerRecord],
                  experts: Sequence[str]) -> str:
    rows = []
    for expert in experts:
        mine = [r for (_, e), r in records.items() if e == expert]
        if not mine:
            continue
        total = sum(r.total for r in mine)
        rows.append([expert, len(mine), f"{sum(r.runs for r in mine) / len(mine):.2f}",
                     total, f"{sum(r.passed for r in mine) / total:.2f}" if total else "-",
                     f"{sum(r.passes for r in mine) / len(mine):.2f}"])
    return markdown_table(["expert", "answers", "share that run", "tests run",
                           "test pass rate", "share passing every counted test"], rows)


def execution_section(votes: datasets.Dataset, config: Any) -> CardSection:
    """Per expert: answers, the share that run, the pass rate of the tests they ran; the
    execution verdicts; the mode and the test-writing prompt."""
    runs = execution_columns(votes)
    records = answer_records(runs)
    experts = list(dict.fromkeys([*config.expert_names, *(e for _, e in records)]))
    verdicts = Counter(runs["winner"])
    execution = config.judge.execution
    text = (
        f"`judge.execution.mode: {execution.mode}`: each uninvolved expert wrote up to "
        f"{execution.tests_per_answer} assert tests for each answer's interface (never its own "
        "battle's), and both answers ran the tests that apply to them in the sandbox "
        f"({execution.test_time_s:g} s per test, {execution.memory_mb} MiB). One execution "
        "verdict per (battle, test author): the higher pass share wins, tests both answers "
        "ran and neither passed are discounted. Verdicts: "
        + ", ".join(f"{w} {verdicts[w]}" for w in ("attacker", "defender", "tie", "invalid"))
        + ". An answer *runs* when some test ran to a pass or a fail; a counted test is one "
        "some answer to the instruction passed.\n\n" + _expert_table(records, experts)
        + "\n\nThe test-writing prompt (`warriorcoder.scoring.test_writing`):\n\n```text\n"
        + TEST_WRITING_PROMPT + "\n```\n\nIt is sent in the tester's chat template with the "
        "reply begun as `" + TEST_REPLY_START.replace("\n", "\\n") + "` (the interface's "
        "first name), so the reply is the tests."
    )
    return CardSection("Execution", text)


def targets_tests_section(rows: Sequence[Mapping[str, Any]],
                          records: Mapping[tuple[str, str], AnswerRecord],
                          require_passing: bool, dropped: int) -> CardSection:
    """sft_final: the targets' test record against the answers that lost."""
    targets = {(r["id"], r["winner"]) for r in rows}
    instructions = {r["id"] for r in rows}

    def line(label: str, group: list[AnswerRecord]) -> list[Any]:
        total = sum(r.total for r in group)
        return [label, len(group),
                f"{sum(r.runs for r in group) / len(group):.2f}" if group else "-",
                f"{sum(r.passed for r in group) / total:.2f}" if total else "-",
                f"{sum(r.passes for r in group) / len(group):.2f}" if group else "-"]

    won = [r for k, r in records.items() if k in targets]
    lost = [r for k, r in records.items() if k[0] in instructions and k not in targets]
    table = markdown_table(["answers", "count", "share that run", "test pass rate",
                            "share passing every counted test"],
                           [line("targets", won), line("losers", lost)])
    text = ("The targets' record on the tests the uninvolved experts wrote, against the "
            "answers that lost on the same instructions (columns `tests_passed`, "
            "`tests_total`, `tests_pass_rate`, `passes_tests`; keep only passing targets with "
            "`ds.filter(lambda r: r['passes_tests'])`).\n\n" + table)
    if require_passing:
        text += (f"\n\n`select.require_passing: true`: {dropped} instruction(s) whose target "
                 "did not pass every counted test were left out.")
    return CardSection("Tests of the targets", text)
