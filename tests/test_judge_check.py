"""`warriorcoder check-judges`: known right/wrong pairs from HumanEval, and judges of known
behaviour on the TGI test server (one that reads the answers, one that always names the first,
one that never gives a verdict). The scores must tell them apart."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from tests.support.tgi_server import FakeModel, TGITestServer
from warriorcoder.cli import main
from warriorcoder.config import ArenaConfig
from warriorcoder.dataset_cards.arena_sections import judges_section
from warriorcoder.evaluation.benchmarks import load_human_eval
from warriorcoder.evaluation.judges import (
    RIGHT_FIRST,
    build_pairs,
    check_judges,
    score_votes,
)
from warriorcoder.evaluation.scoring import PASS, check_solution

PAIRS = 4
_ANSWER = re.compile(r"\[\[The Start of Assistant ([AB])'s Answer\]\]\n(.*?)\n"
                     r"\[\[The End of Assistant \1's Answer\]\]", re.DOTALL)
_QUESTION = re.compile(r"\[\[User Question\]\]\n(.*?)\n\[\[The Start of Assistant A's", re.DOTALL)


def _program(fenced: str) -> str:
    return fenced.removeprefix("```python\n").removesuffix("\n```")


@pytest.fixture(scope="module")
def pairs():
    return build_pairs(PAIRS, ["mutant", "swap"], seed=3)


def test_each_pair_holds_a_passing_and_a_failing_answer_in_the_same_form(pairs):
    known, skipped = pairs
    problems = {p.task_id: p for p in load_human_eval().problems}
    assert [p.kind for p in known] == ["mutant"] * PAIRS + ["swap"] * PAIRS
    assert len({p.task_id for p in known}) == PAIRS
    for pair in known:
        problem = problems[pair.task_id]
        assert pair.right.startswith("```python\n") and pair.wrong.startswith("```python\n")
        assert problem.prompt.strip().splitlines()[0] in pair.instruction
        assert check_solution(problem, _program(pair.right), None).base_status == PASS
        assert check_solution(problem, _program(pair.wrong), None).base_status != PASS
        right_lines, wrong_lines = (_program(a).splitlines() for a in (pair.right, pair.wrong))
        if pair.kind == "mutant":  # one changed line, the rest (docstring included) identical
            assert len(right_lines) == len(wrong_lines)
            changed = [i for i, (r, w) in enumerate(zip(right_lines, wrong_lines, strict=True))
                       if r != w]
            assert len(changed) == 1, pair.change
            assert pair.change.startswith(f"line {changed[0] + 1}:")
        else:
            assert f"def {problem.entry_point}(" not in pair.wrong
    assert all(isinstance(why, str) for why in skipped.values())
    again, _ = build_pairs(PAIRS, ["mutant", "swap"], seed=3)
    assert again == known
    other, _ = build_pairs(PAIRS, ["mutant"], seed=4)
    assert {p.task_id for p in other} != {p.task_id for p in known}


def _judges(rights: set[tuple[str, str]]):
    """Responders: `reader` picks the right answer to the question asked (of the (question,
    answer) pairs in `rights`), `first` always names A, `mute` never decides."""
    def responder(kind, payload, model_name):
        if model_name == "first":
            return "The first one.\n[[A]]"
        if model_name == "mute":
            return "Both answers look reasonable to me."
        content = payload["messages"][-1]["content"]
        question, answers = _QUESTION.search(content).group(1), dict(_ANSWER.findall(content))
        verdict = "A" if (question, answers["A"]) in rights else "B"
        return f"Reads right.\n[[{verdict}]]"
    return {name: FakeModel(f"sim/{name}", responder=responder)
            for name in ("reader", "first", "mute")}


def test_scores_tell_a_reading_judge_from_a_first_shown_one_and_a_mute_one(pairs, tmp_path):
    known, _ = pairs
    with TGITestServer(_judges({(p.instruction, p.right) for p in known})) as server:
        config = ArenaConfig.model_validate({
            "hub": {"root": str(tmp_path / "hub")},
            "experts": [{"name": n, "model_id": f"sim/{n}", "urls": [server.url(n)]}
                        for n in ("reader", "first", "mute")],
            "generation": {"journal": str(tmp_path / "journal.sqlite")},
            "judge": {"max_attempts": 2, "max_new_tokens": 64},
        })
        votes = check_judges(config, known, progress=False)
        served = server.stats.total_served
        assert check_judges(config, known, progress=False) == votes
        assert server.stats.total_served == served  # the rerun comes from the journal
    assert len(votes) == 3 * len(known) * 2
    scores = {(s.judge, s.kind): s for s in score_votes(votes)}
    for kind in ("mutant", "swap"):
        reader, first, mute = (scores[(name, kind)] for name in ("reader", "first", "mute"))
        assert (reader.votes, reader.right, reader.accuracy) == (2 * PAIRS, 2 * PAIRS, 1.0)
        assert reader.both_orders_right == PAIRS and reader.first_shown_share == 0.5
        assert (first.right, first.wrong, first.accuracy) == (PAIRS, PAIRS, 0.5)
        assert first.first_shown_share == 1.0 and first.both_orders_right == 0
        assert (mute.invalid, mute.right, mute.first_shown_share) == (2 * PAIRS, 0, None)
    assert all(v.attempts == 2 for v in votes if v.judge == "mute")
    assert {v.order for v in votes} == {RIGHT_FIRST, "wrong_first"}


def test_the_command_prints_the_table_and_writes_every_vote(tmp_path):
    with TGITestServer(_judges(set())) as server:
        (tmp_path / "arena.yaml").write_text(json.dumps({
            "hub": {"root": "hub"},
            "experts": [{"name": n, "model_id": f"sim/{n}", "urls": [server.url(n)]}
                        for n in ("first", "mute")],
            "generation": {"journal": "journal.sqlite"},
            "judge": {"max_attempts": 1},
        }))
        out = tmp_path / "votes.jsonl"
        result = CliRunner().invoke(main, [
            "check-judges", "-c", str(tmp_path / "arena.yaml"), "--pairs", "2", "--kinds",
            "swap", "--judges", "first", "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert "| first | 2 | swap | 4 | 2 (0.50) | 2 | 0 | 0 | 1.00 | 0 |" in result.output
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert sum("pair" in line for line in lines) == 2
        assert [line["vote"]["picked"] for line in lines if "vote" in line].count("wrong") == 2
        bad = CliRunner().invoke(main, ["check-judges", "-c", str(tmp_path / "arena.yaml"),
                                        "--judges", "nobody"])
        assert bad.exit_code == 1 and "Error: --judges: ['nobody']" in bad.output


def test_the_votes_card_names_judges_that_mostly_answer_tie():
    votes = {"judge": [], "battle_id": [], "order": [], "verdict": [], "winner": [],
             "attempts": []}
    for i in range(10):  # `blind` ties 9 of 10 valid votes, `sharp` decides all 10
        for judge, verdict, winner in (("blind", "Tie" if i else "A", "tie" if i else "attacker"),
                                       ("sharp", "A", "attacker"), ("mute", None, "invalid")):
            for key, value in (("judge", judge), ("battle_id", f"b{i}"),
                               ("order", "attacker_first"), ("verdict", verdict),
                               ("winner", winner), ("attempts", 1)):
                votes[key].append(value)
    text = judges_section(votes, [], both_orders=False).markdown
    assert "`blind` answered Tie in 80% or more of their valid votes" in text
    assert "`sharp`" not in text and "`mute`" not in text
    assert "`warriorcoder check-judges` measures" in text
