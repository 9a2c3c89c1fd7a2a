"""Execution verdicts: from two answers' test outcomes to `[[A]]`, `[[B]]` or `[[Tie]]`, and how
they count beside the LLM votes (`judge.execution`).

One verdict per (battle, test author). The author wrote tests for each answer's interface; the
battle's tests from that author are the union. A test *applies* to an answer when every
interface name it calls is defined by that answer or named in the instruction (a name the
instruction fixes is every answer's to define: a test calling it applies to all, and an answer
that lacks it fails). A test that applies to neither answer is not run.

The verdict compares the answers' pass shares over the tests that count. Small testers write
wrong tests, so a test that applies to both answers and that neither passes is *discounted*
(it tells the answers apart no better than a wrong assert would); a test that only one answer
can run keeps counting. The attacker is A: `A` means the attacker's answer did better.

Modes (`judge.execution.mode`), per battle, with t = eq. 2 vote totals:

- `off`: the LLM votes alone (the paper).
- `vote`: each execution verdict is one more vote beside the LLM judges' (eq. 2 and the
  majority that feeds Elo).
- `first`: the execution verdicts decide when they are decisive (their totals differ); the LLM
  votes decide only the battles execution leaves tied (or has no verdict on).
- `record`: battles as in `first`; and each instruction's target is chosen among its answers
  with the best test record (`record_scores`: tests passed of the counted tests it ran, over
  all its battles), eq. 5 deciding between those (CodeT's idea that tests no answer passes are
  wrong, applied per instruction). An answer's record holds only tests written by experts
  uninvolved in its battles, so no expert's tests ever judge its own answer.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from warriorcoder.scoring.tally import BattleTally

PASS, FAIL, ERROR, TIMEOUT, NO_CODE = "pass", "fail", "error", "timeout", "no_code"
NOT_RUN = "not_applicable"
"""The outcome of a test that does not apply to an answer (it calls names the answer does not
define and the instruction does not name); it was not run."""
OUTCOMES = (PASS, FAIL, ERROR, TIMEOUT, NO_CODE, NOT_RUN)

RECORD_COLUMNS = ("kind", "tests", "test_outcomes_attacker", "test_outcomes_defender")
"""The votes columns behind execution verdicts and test records (`judge.execution` on)."""

Mode = Literal["off", "vote", "first", "record"]
MODES: tuple[Mode, ...] = ("off", "vote", "first", "record")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHARES = {"attacker": (1.0, 0.0), "defender": (0.0, 1.0), "tie": (0.5, 0.5)}


def instruction_names(instruction: str) -> frozenset[str]:
    """Every identifier-like word of the instruction (the names it may fix)."""
    return frozenset(_WORD.findall(instruction))


def names_used(test: str, interface: Iterable[str]) -> frozenset[str]:
    """The interface names a test refers to (empty when it does not parse)."""
    wanted = set(interface)
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return frozenset()
    return frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in wanted)


def applies(used: Iterable[str], defined: Iterable[str], required: Iterable[str]) -> bool:
    """Whether a test using interface names `used` applies to an answer defining `defined`,
    under an instruction naming `required`."""
    known = set(defined) | set(required)
    return all(name in known for name in used)


@dataclass(frozen=True)
class SideScore:
    """One answer's record on one author's tests."""

    passed: int
    counted: int
    run: int
    """Tests that applied to it (and were run, or would have been had it had code)."""

    @property
    def share(self) -> float:
        return self.passed / self.counted if self.counted else 0.0


@dataclass(frozen=True)
class ExecutionVerdict:
    """One author's verdict on one battle (the attacker is A)."""

    verdict: Literal["A", "B", "Tie"]
    attacker: SideScore
    defender: SideScore
    discounted: int
    """Tests both answers ran and neither passed: left out of both shares."""

    @property
    def winner(self) -> Literal["attacker", "defender", "tie"]:
        return {"A": "attacker", "B": "defender", "Tie": "tie"}[self.verdict]  # type: ignore[return-value]

    def summary(self) -> str:
        """A one-line account of the verdict (the `judgement` of its votes row)."""
        a, d = self.attacker, self.defender
        return (f"execution: attacker passed {a.passed} of {a.counted} counted tests, defender "
                f"{d.passed} of {d.counted} ({self.discounted} that both ran and neither "
                f"passed discounted) -> [[{self.verdict}]]")


def execution_verdict(attacker: Sequence[str], defender: Sequence[str],
                      discount_unpassed: bool = True) -> ExecutionVerdict:
    """The verdict from per-test outcomes of the two answers (same tests, same order; each an
    entry of `OUTCOMES`). Raises ValueError for unequal lengths or an unknown outcome."""
    if len(attacker) != len(defender):
        raise ValueError(f"{len(attacker)} attacker outcomes but {len(defender)} defender ones")
    for outcome in (*attacker, *defender):
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown test outcome {outcome!r}; expected one of {OUTCOMES}")
    counts = {"a": [0, 0, 0], "d": [0, 0, 0]}  # passed, counted, run
    discounted = 0
    for a, d in zip(attacker, defender, strict=True):
        both = a != NOT_RUN and d != NOT_RUN
        if both and discount_unpassed and a != PASS and d != PASS:
            discounted += 1
            for side in ("a", "d"):
                counts[side][2] += 1
            continue
        for side, outcome in (("a", a), ("d", d)):
            if outcome == NOT_RUN:
                continue
            counts[side][0] += outcome == PASS
            counts[side][1] += 1
            counts[side][2] += 1
    score_a, score_d = SideScore(*counts["a"]), SideScore(*counts["d"])
    verdict: Literal["A", "B", "Tie"] = "Tie"
    if score_a.share > score_d.share:
        verdict = "A"
    elif score_d.share > score_a.share:
        verdict = "B"
    return ExecutionVerdict(verdict, score_a, score_d, discounted)


@dataclass(frozen=True)
class Totals:
    """A battle's eq. 2 vote totals and how many verdicts are behind them."""

    t_attacker: float
    t_defender: float
    valid: int


def execution_totals(winners: Sequence[str]) -> Totals:
    """Eq. 2 totals of execution verdicts (winners `attacker`/`defender`/`tie`)."""
    t_a = t_d = 0.0
    for winner in winners:
        share_a, share_d = _SHARES[winner]
        t_a += share_a
        t_d += share_d
    return Totals(t_a, t_d, len(winners))


def combine(mode: str, llm: Totals, execution: Sequence[str]) -> Totals:
    """A battle's totals under `mode` from its (weighted) LLM totals and the winners of its
    execution verdicts. Raises ValueError for an unknown mode."""
    if mode not in MODES:
        raise ValueError(f"unknown judge.execution mode {mode!r}; expected one of {MODES}")
    if mode == "off" or not execution:
        return llm
    run = execution_totals(execution)
    if mode == "vote":
        return Totals(llm.t_attacker + run.t_attacker, llm.t_defender + run.t_defender,
                      llm.valid + run.valid)
    decisive = run.t_attacker != run.t_defender  # `first` and `record`
    if decisive or llm.valid == 0:
        return run
    return llm


LLM, EXECUTION = "llm", "execution"
KINDS = (LLM, EXECUTION)


def split_kinds(votes: Mapping[str, Sequence[Any]]
                ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """(LLM vote columns, execution verdict columns) of a votes table; a table without a
    `kind` column (written with `judge.execution: off`) is all LLM votes."""
    kinds = votes.get("kind")
    if kinds is None:
        return {k: list(v) for k, v in votes.items()}, {k: [] for k in votes}
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown vote kind {kind!r}; expected one of {KINDS}")
    picks = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind in KINDS}
    return tuple({k: [v[i] for i in picks[kind]] for k, v in votes.items()}  # type: ignore[return-value]
                 for kind in KINDS)


def with_execution(tallies: Sequence[BattleTally], execution: Mapping[str, Sequence[Any]],
                   mode: str) -> list[BattleTally]:
    """The LLM tallies with each battle's execution verdicts (columns `battle_id`,
    `instruction_id`, `attacker`, `defender`, `winner`; invalid ones left out) counted as
    `mode` says; battles only execution judged are added. Sorted by battle id."""
    if mode not in MODES:
        raise ValueError(f"unknown judge.execution mode {mode!r}; expected one of {MODES}")
    by_battle: dict[str, list[int]] = {}
    for index, battle_id in enumerate(execution.get("battle_id", [])):
        by_battle.setdefault(battle_id, []).append(index)
    if mode == "off" or not by_battle:
        return list(tallies)
    known = {t.battle_id: t for t in tallies}
    for battle_id, indexes in by_battle.items():
        if battle_id not in known:
            first = indexes[0]
            known[battle_id] = BattleTally(battle_id, execution["instruction_id"][first],
                                           execution["attacker"][first],
                                           execution["defender"][first], 0, 0, 0.0, 0.0)
    out = []
    for battle_id in sorted(known):
        tally = known[battle_id]
        indexes = by_battle.get(battle_id, [])
        winners = [execution["winner"][i] for i in indexes
                   if execution["winner"][i] in _SHARES]
        totals = combine(mode, Totals(tally.t_attacker, tally.t_defender, tally.valid), winners)
        out.append(replace(tally, votes=tally.votes + len(indexes), valid=totals.valid,
                           t_attacker=totals.t_attacker, t_defender=totals.t_defender))
    return out


def answer_outcomes(execution: Mapping[str, Sequence[Any]]
                    ) -> dict[tuple[str, str], dict[str, str]]:
    """(instruction_id, expert) -> test -> outcome, over every execution row the answer is in
    (tests it did not run left out; a test met twice keeps its first outcome: the same code
    and test give the same outcome)."""
    records: dict[tuple[str, str], dict[str, str]] = {}
    for i, instruction_id in enumerate(execution.get("instruction_id", [])):
        tests = execution["tests"][i] or []
        for side in ("attacker", "defender"):
            record = records.setdefault((instruction_id, execution[side][i]), {})
            for test, outcome in zip(tests, execution[f"test_outcomes_{side}"][i] or [],
                                     strict=True):
                if outcome != NOT_RUN:
                    record.setdefault(test, outcome)
    return records


@dataclass(frozen=True)
class AnswerRecord:
    """One answer's test record: what a downstream filter reads."""

    total: int
    passed: int
    counted: int
    """Tests it ran that some answer to the instruction passed (a test nobody passes is
    probably wrong)."""
    runs: bool
    """It has code and some test ran to a pass or a fail (not every one an error)."""

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def passes(self) -> bool:
        """It passed every counted test, and there was one."""
        return self.counted > 0 and self.passed >= self.counted


def answer_records(execution: Mapping[str, Sequence[Any]]
                   ) -> dict[tuple[str, str], AnswerRecord]:
    """`AnswerRecord` per (instruction_id, expert) from the execution rows."""
    outcomes = answer_outcomes(execution)
    passed_by_someone: dict[str, set[str]] = {}
    for (instruction_id, _), record in outcomes.items():
        passed_by_someone.setdefault(instruction_id, set()).update(
            t for t, o in record.items() if o == PASS)
    records = {}
    for (instruction_id, expert), record in outcomes.items():
        good = passed_by_someone[instruction_id]
        passed = sum(o == PASS for o in record.values())
        records[(instruction_id, expert)] = AnswerRecord(
            total=len(record), passed=passed, counted=sum(t in good for t in record),
            runs=any(o in (PASS, FAIL) for o in record.values()))
    return records


def record_scores(execution: Mapping[str, Sequence[Any]]) -> dict[tuple[str, str], float]:
    """(instruction_id, expert) -> the answer's test record, the share of its counted tests it
    passed (`AnswerRecord`; 0.0 when it ran no counted test): what `record` ranks by."""
    return {key: record.passed / record.counted if record.counted else 0.0
            for key, record in answer_records(execution).items()}
