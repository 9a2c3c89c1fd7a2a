"""Execution-grounded judging: tests written by uninvolved experts (parsed strictly), verdicts
from the answers' outcomes that hold up when some tests are wrong, and how they count beside
the LLM votes (`judge.execution`)."""

from __future__ import annotations

import pytest

from warriorcoder.config import parse_config
from warriorcoder.scoring.execution_verdicts import (
    ERROR,
    FAIL,
    NO_CODE,
    NOT_RUN,
    PASS,
    Totals,
    applies,
    combine,
    execution_verdict,
    instruction_names,
    names_used,
)
from warriorcoder.scoring.test_writing import interface_names, parse_tests, render_test_prompt

EXPERTS = ('experts: [{name: a, model_id: m, urls: ["http://h"]}, '
           '{name: b, model_id: m, urls: ["http://h"]}]\n')


def test_the_prompt_shows_instruction_and_interface_verbatim():
    prompt = render_test_prompt("Sum {x} items", "def total(xs: list[int]) -> int", 4)
    assert "Sum {x} items" in prompt and "def total(xs: list[int]) -> int" in prompt
    assert "Write 4 independent Python assert statements" in prompt
    assert "Do not write the solution" in prompt


def test_interface_names_are_the_top_level_definitions():
    lines = ["def total(xs) -> int", "class Stack:", "    def push(self, x)",
             "async def fetch(url)"]
    assert interface_names(lines) == ["total", "Stack", "fetch"]


def test_a_testers_own_solution_never_stands_in_for_the_answer():
    reply = ("Here is a solution and tests:\n```python\nimport math\n"
             "def count_vowels(s):\n    return 0\n\n"
             "assert count_vowels('abc') == 1\nassert count_vowels('') == 0\n"
             "assert 1 + 1 == 2\nassert count_vowels('abc') == 1\n```")
    parsed = parse_tests(reply, ["count_vowels"], 5)
    assert parsed is not None
    assert parsed.tests == ("import math\nassert count_vowels('abc') == 1",
                            "import math\nassert count_vowels('') == 0")
    assert parsed.dropped == 1  # `assert 1 + 1 == 2` calls nothing of the interface
    assert all("def count_vowels" not in test for test in parsed.tests)


def test_a_block_that_does_not_parse_is_read_line_by_line_and_capped():
    reply = "```python\nassert f(1) == 2\nassert f(2) == (\nassert f(3) == 4\nassert f(4) == 5\n```"
    parsed = parse_tests(reply, ["f"], 2)
    assert parsed is not None and parsed.tests == ("assert f(1) == 2", "assert f(3) == 4")
    assert parsed.dropped == 1


def test_a_reply_without_a_usable_assert_is_invalid_not_guessed():
    assert parse_tests("I think f works fine.", ["f"], 5) is None
    assert parse_tests("```python\nassert g(1) == 2\n```", ["f"], 5) is None
    assert parse_tests("```python\nprint(f(1))\n```", ["f"], 5) is None


def test_a_name_the_instruction_fixes_applies_to_every_answer():
    required = instruction_names("Write a function `has_close_elements(numbers, threshold)`.")
    used = names_used("assert has_close_elements([1.0], 0.5) is False",
                      {"has_close_elements", "helper"})
    assert used == {"has_close_elements"}
    assert applies(used, {"other"}, required)  # it must define it: the test applies, and fails
    free = names_used("assert solve([3, 1]) == [1, 3]", {"solve", "sort_list"})
    assert not applies(free, {"sort_list"}, instruction_names("Sort a list."))
    assert applies(free, {"solve"}, instruction_names("Sort a list."))


def test_more_passes_win_and_a_test_nobody_passes_is_discounted():
    right = [PASS, PASS, PASS, FAIL]  # the 4th test is wrong: the right answer fails it
    wrong = [PASS, FAIL, ERROR, FAIL]
    verdict = execution_verdict(right, wrong)
    assert verdict.verdict == "A" and verdict.winner == "attacker"
    assert (verdict.attacker.passed, verdict.attacker.counted) == (3, 3)
    assert (verdict.defender.passed, verdict.defender.counted) == (1, 3)
    assert verdict.discounted == 1
    assert execution_verdict(wrong, right).verdict == "B"
    assert "[[A]]" in verdict.summary()


def test_wrong_tests_alone_leave_a_tie():
    both_fail = [FAIL, FAIL]
    assert execution_verdict(both_fail, both_fail).verdict == "Tie"
    assert execution_verdict(both_fail, both_fail, discount_unpassed=False).verdict == "Tie"


def test_an_answer_without_code_loses_to_one_that_passes():
    verdict = execution_verdict([NO_CODE, NO_CODE], [PASS, FAIL])
    assert verdict.verdict == "B" and verdict.defender.share == 1.0


def test_tests_one_side_cannot_run_count_for_the_side_that_can():
    # interfaces differ: each side ran only the tests written for its own names
    verdict = execution_verdict([PASS, PASS, NOT_RUN, NOT_RUN], [NOT_RUN, NOT_RUN, PASS, FAIL])
    assert verdict.verdict == "A" and verdict.discounted == 0
    assert (verdict.defender.passed, verdict.defender.counted) == (1, 2)


def test_unknown_outcomes_and_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="unknown test outcome"):
        execution_verdict(["passed"], [PASS])
    with pytest.raises(ValueError, match="1 attacker outcomes but 2"):
        execution_verdict([PASS], [PASS, PASS])


def test_modes_count_execution_beside_or_ahead_of_the_llm_votes():
    llm = Totals(2.0, 0.0, 2)  # two judges for the attacker
    assert combine("off", llm, ["defender"]) == llm
    assert combine("vote", llm, ["defender"]) == Totals(2.0, 1.0, 3)
    assert combine("first", llm, ["defender"]) == Totals(0.0, 1.0, 1)
    assert combine("first", llm, ["tie"]) == llm  # execution undecided: the LLM votes decide
    assert combine("first", Totals(0.0, 0.0, 0), ["tie"]) == Totals(0.5, 0.5, 1)
    assert combine("vote", llm, []) == llm
    with pytest.raises(ValueError, match="unknown judge.execution mode"):
        combine("always", llm, ["tie"])


def test_execution_config_off_keeps_existing_fingerprints_and_takes_a_bare_mode():
    plain = parse_config(EXPERTS)
    assert "execution" not in plain.to_card_dict()["judge"]
    assert "require_passing" not in plain.to_card_dict()["select"]
    assert parse_config(EXPERTS + "judge: {execution: off}\n").to_card_dict() == \
        plain.to_card_dict()
    first = parse_config(EXPERTS + "judge: {execution: first}\n")
    assert first.judge.execution.mode == "first"
    assert first.to_card_dict()["judge"]["execution"]["mode"] == "first"
    tuned = parse_config(EXPERTS + "judge: {execution: {mode: vote, tests_per_answer: 3}}\n")
    assert tuned.judge.execution.tests_per_answer == 3
