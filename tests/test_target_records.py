"""`judge.execution.mode: record`: an instruction's target is one of its answers with the best
test record over all its battles, eq. 5 choosing among those; battles are tallied as in
`first`. The record counts only the tests some answer to the instruction passed (CodeT: a test
nobody passes is probably wrong), and every test in an answer's record was written by an expert
uninvolved in that answer's battles."""

from __future__ import annotations

from warriorcoder.scoring.execution_verdicts import (
    FAIL,
    NOT_RUN,
    PASS,
    execution_verdict,
    record_scores,
)
from warriorcoder.scoring.standings import StandingsOptions, standings

EXPERTS = ["qwen", "qwen-b", "smol"]
OPTIONS = {"elo_permutations": 5, "bootstrap_rounds": 5, "stability_orders": 8}


def _votes() -> dict[str, list]:
    """One instruction, three battles. Each battle has one LLM vote from its uninvolved judge
    and one execution verdict from the same expert's tests:

    - qwen vs smol (tests by qwen-b): each passes one of two -> execution tie; the LLM vote
      names qwen, so qwen wins the battle.
    - qwen-b vs smol (tests by qwen): qwen-b passes all three, smol none -> qwen-b.
    - qwen vs qwen-b (tests by smol): qwen passes the one test, qwen-b fails it -> qwen.

    Eq. 5 then favours qwen (two wins), but qwen-b's record is better: 3 of 4 counted tests
    against qwen's 2 of 3."""
    battles = [("b1", "qwen", "smol", "qwen-b", "A", ["t1", "t2"], [PASS, FAIL], [FAIL, PASS]),
               ("b2", "qwen-b", "smol", "qwen", "Tie", ["t3", "t4", "t6"],
                [PASS, PASS, PASS], [FAIL, FAIL, FAIL]),
               ("b3", "qwen", "qwen-b", "smol", "Tie", ["t5"], [PASS], [FAIL])]
    columns: dict[str, list] = {k: [] for k in (
        "battle_id", "instruction_id", "attacker", "defender", "judge", "order", "verdict",
        "winner", "kind", "tests", "test_outcomes_attacker", "test_outcomes_defender")}
    shares = {"A": "attacker", "B": "defender", "Tie": "tie"}
    for battle, attacker, defender, judge, llm, tests, out_a, out_d in battles:
        run = execution_verdict(out_a, out_d)
        for kind, verdict, row_tests, a, d in (("llm", llm, [], [], []),
                                                ("execution", run.verdict, tests, out_a, out_d)):
            for key, value in (("battle_id", battle), ("instruction_id", "i1"),
                               ("attacker", attacker), ("defender", defender), ("judge", judge),
                               ("order", "attacker_first"), ("verdict", verdict),
                               ("winner", shares[verdict]), ("kind", kind), ("tests", row_tests),
                               ("test_outcomes_attacker", a), ("test_outcomes_defender", d)):
                columns[key].append(value)
    return columns


def test_records_count_only_tests_some_answer_passed():
    votes = _votes()
    votes["tests"][-1] = ["t5", "t7"]  # a test nobody passes: left out of every record
    votes["test_outcomes_attacker"][-1] = [PASS, FAIL]
    votes["test_outcomes_defender"][-1] = [FAIL, FAIL]
    records = record_scores({k: v for k, v in votes.items()})
    assert records[("i1", "qwen")] == 2 / 3
    assert records[("i1", "qwen-b")] == 3 / 4
    assert records[("i1", "smol")] == 1 / 5  # t1, t2, t3, t4, t6 counted; it passed t2


def test_record_mode_picks_the_best_record_where_eq5_picks_the_battle_winner():
    votes = _votes()
    first = standings(votes, EXPERTS, StandingsOptions(execution="first", **OPTIONS))
    record = standings(votes, EXPERTS, StandingsOptions(execution="record", **OPTIONS))
    assert first.targets[0].winner == "qwen"
    assert record.targets[0].winner == "qwen-b"
    # battles are tallied alike: only the choice among the instruction's answers differs
    assert [(t.t_attacker, t.t_defender) for t in record.tallies] == \
        [(t.t_attacker, t.t_defender) for t in first.tallies]
    # the stability check re-chooses by the same rule: qwen-b under every alternative rating
    assert record.stability == {"i1": 1.0}


def test_equal_records_leave_the_choice_to_eq5():
    votes = _votes()
    votes["test_outcomes_attacker"][3] = [PASS, PASS, NOT_RUN]  # qwen-b: 2 of 3, as qwen
    votes["test_outcomes_defender"][3] = [FAIL, FAIL, NOT_RUN]
    records = record_scores(votes)
    assert records[("i1", "qwen-b")] == records[("i1", "qwen")] == 2 / 3
    record = standings(votes, EXPERTS, StandingsOptions(execution="record", **OPTIONS))
    first = standings(votes, EXPERTS, StandingsOptions(execution="first", **OPTIONS))
    assert record.targets[0].winner == first.targets[0].winner
