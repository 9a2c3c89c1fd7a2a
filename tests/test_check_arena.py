"""`warriorcoder check-arena` and execution judging end to end, on the TGI test server.

Three experts of known behaviour: `right` answers every HumanEval problem with its canonical
solution, `wrong` with a function that returns None, `half` right on even-numbered problems
only. As judges all three always name the answer shown first (a coin, as check-judges measured
the packaged models); as test authors they write the problem's own asserts (a perfect tester)
plus one wrong assert. LLM votes alone then pick no better than the order does; execution
judging must pick a passing answer wherever one exists, through the judge and select phases'
own code, and a rerun must send no call."""

from __future__ import annotations

import ast
import json
import re

import pytest
from click.testing import CliRunner

from tests.support.sim_instructions import CHATML_TEMPLATE
from tests.support.tgi_server import FakeModel, TGITestServer
from warriorcoder.cli import main
from warriorcoder.config import ArenaConfig
from warriorcoder.evaluation.arena_check import check_arena
from warriorcoder.evaluation.benchmarks import load_human_eval
from warriorcoder.evaluation.prompts import instruction

PROBLEMS = 4
NAMES = ("right", "wrong", "half")


def _problems():
    return load_human_eval().problems[:PROBLEMS]


def _asserts(problem) -> list[str]:
    """The first three asserts of the problem's own `check`, calling the entry point."""
    found = [ast.unparse(node) for node in ast.walk(ast.parse(problem.test))
             if isinstance(node, ast.Assert) and "candidate(" in ast.unparse(node)]
    return [line.replace("candidate(", f"{problem.entry_point}(") for line in found][:3]


def _responder():
    problems = _problems()
    by_instruction = {instruction(p): p for p in problems}

    def respond(kind, payload, model_name):
        if kind == "generate":  # test writing: a raw completion of the prefilled reply
            prompt = payload["inputs"]
            assert "<|im_start|>user\nYou are an impartial software tester" in prompt
            problem = next(p for text, p in by_instruction.items() if text in prompt)
            tests = [*_asserts(problem), f"assert {problem.entry_point}(None) == 12345"]
            reply = "```python\n" + "\n".join(tests) + "\n```"
            start = f"<|im_start|>assistant\n```python\nassert {problem.entry_point}("
            assert prompt.endswith(start) and reply.startswith(start.split("\n", 1)[1])
            return reply[len(start.split("\n", 1)[1]):]
        content = payload["messages"][-1]["content"]
        if content.startswith("This is a chatbot arena"):
            return "The first answer.\n[[A]]"
        problem = by_instruction[content]
        number = int(problem.task_id.split("/")[1])
        good = model_name == "right" or (model_name == "half" and number % 2 == 0)
        body = problem.prompt + (problem.canonical_solution if good else "    return None\n")
        return f"Here it is:\n```python\n{body}```\n"
    return {name: FakeModel(f"sim/{name}", responder=respond) for name in NAMES}


def _config(server, tmp_path) -> dict:
    return {
        "hub": {"root": str(tmp_path / "hub")},
        "experts": [{"name": n, "model_id": f"sim/{n}", "urls": [server.url(n)],
                     "chat_template": CHATML_TEMPLATE} for n in NAMES],
        "generation": {"journal": str(tmp_path / "journal.sqlite")},
        "battle": {"max_new_tokens": 512},
        "judge": {"max_attempts": 1, "max_new_tokens": 64,
                  "execution": {"tests_per_answer": 4, "test_time_s": 4}},
        "select": {"bootstrap_rounds": 20, "elo_permutations": 5, "stability_orders": 5},
    }


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("arena")
    with TGITestServer(_responder()) as server:
        config = ArenaConfig.model_validate(_config(server, tmp_path))
        report = check_arena(config, PROBLEMS, progress=False)
        served = server.stats.total_served
        again = check_arena(config, PROBLEMS, ["first"], progress=False)
        resent = server.stats.total_served - served
    return report, again, resent


def test_every_expert_is_scored_on_the_problems_own_tests(arena):
    report, _, _ = arena
    assert report.problems == [p.task_id for p in _problems()]
    assert report.pass_rate("right") == 1.0 and report.pass_rate("wrong") == 0.0
    assert report.pass_rate("half") == 0.5
    assert report.oracle == 1.0 and report.best_expert == "right"
    assert report.random_pick == pytest.approx(0.5)


def test_execution_judging_picks_the_passing_answer_where_llm_votes_cannot(arena):
    report, _, _ = arena
    modes = {m.mode: m for m in report.modes}
    assert set(modes) == {"off", "vote", "first", "record"}
    first = modes["first"]
    assert first.target_pass_rate == 1.0 and first.difference == 0.0
    assert first.decisive == 2 and first.selection_accuracy == 1.0  # problems 1 and 3
    assert first.target_interval == (1.0, 1.0)
    assert modes["off"].target_pass_rate < 1.0  # the first-shown judges decide nothing right
    table = report.table()
    assert "| first | 1.000 [1.000, 1.000] | +0.000 [+0.000, +0.000] | 2 | 2/2 (1.00) |" in table
    assert "off (LLM votes only: the paper)" in table


def test_a_rerun_sends_no_call(arena):
    report, again, resent = arena
    assert resent == 0
    assert again.modes[0].targets == next(m for m in report.modes if m.mode == "first").targets


def test_the_command_prints_the_table_and_writes_json(tmp_path):
    with TGITestServer(_responder()) as server:
        path = tmp_path / "arena.yaml"
        path.write_text(json.dumps(_config(server, tmp_path)))
        out = tmp_path / "arena-check.json"
        result = CliRunner().invoke(main, ["check-arena", "-c", str(path), "--problems", "2",
                                           "--modes", "off,first", "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert re.search(r"\| first \| 1\.000", result.output)
        data = json.loads(out.read_text())
        assert [m["mode"] for m in data["modes"]] == ["off", "first"]
        assert data["experts"]["right"]["pass_rate"] == 1.0
        bad = CliRunner().invoke(main, ["check-arena", "-c", str(path), "--problems", "2",
                                        "--modes", "sometimes"])
        assert bad.exit_code == 1 and "Error: --modes: choose from off, vote, first" in bad.output


def judge_and_select(data: dict, problems: int, tmp_path) -> tuple:
    """(battles, judge output, select output) on the first `problems` problems: the judge and
    select phases' own builders, with `judge.execution.mode: first` and each config section
    updated with `data`'s values for it, against this module's test server."""
    from warriorcoder.builders import judge as judge_phase
    from warriorcoder.builders import select as select_phase
    from warriorcoder.builders.base import PhaseInput
    from warriorcoder.evaluation.arena_check import battles_of, pick_problems
    from warriorcoder.generation import ExpertPool

    with TGITestServer(_responder()) as server:
        config = _config(server, tmp_path)
        config["judge"]["execution"]["mode"] = "first"
        for section, values in data.items():
            config[section].update(values)
        arena = ArenaConfig.model_validate(config)
        with ExpertPool.from_config(arena, progress=False) as pool:
            battles = battles_of(arena, pool, pick_problems(problems))
            votes = judge_phase.PHASE.build(PhaseInput(arena, battles, None, lambda: pool))
            chosen = select_phase.PHASE.build(PhaseInput(arena, votes.dataset, None,
                                                         lambda: pool))
    return battles, votes, chosen


def test_votes_and_sft_final_carry_the_tests_and_their_outcomes(tmp_path):
    battles, out, chosen = judge_and_select({"select": {"require_passing": True}}, 2, tmp_path)
    votes = out.dataset
    runs = votes.filter(lambda r: r["kind"] == "execution")
    assert len(runs) == len(battles)  # three experts: one uninvolved author per battle
    for row in runs:
        assert row["judge"] not in (row["attacker"], row["defender"])
        assert len(row["tests"]) == len(row["test_outcomes_attacker"]) == 4
        assert any("12345" in test for test in row["tests"])  # the wrong assert is kept...
    wrong_vs_right = next(r for r in runs if {r["attacker"], r["defender"]} == {"right",
                                                                                "wrong"})
    assert wrong_vs_right["winner"] == ("attacker" if wrong_vs_right["attacker"] == "right"
                                        else "defender")
    assert wrong_vs_right["tests_discounted"] == 1  # ...and discounted: no answer passes it
    sft = chosen.dataset
    assert set(sft["passes_tests"]) == {True} and all(t == 4 for t in sft["tests_total"])
    assert all(rate == 0.75 for rate in sft["tests_pass_rate"])
    card = "\n".join(s.markdown for s in chosen.content.sections)
    assert "| targets | 2 | 1.00 | 0.75 | 1.00 |" in card  # recomputed from the rows above
    votes_card = "\n".join(s.markdown for s in out.content.sections)
    assert "| right | 2 | 1.00 | 8 | 0.75 | 1.00 |" in votes_card
    assert "You are an impartial software tester" in votes_card
