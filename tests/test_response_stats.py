"""Code statistics of answers: fenced blocks, Python that parses, length; card sections."""

from __future__ import annotations

from warriorcoder.dataset_cards.arena_sections import battle_code_section, target_code_section
from warriorcoder.scoring.answer_stats import (
    battle_answers,
    code_blocks,
    python_parses,
    response_stats,
    target_groups,
)

GOOD = "Here:\n\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
BROKEN = "```python\ndef add(a, b)\n    return a + b\n```"
UNTAGGED = "```\nprint('hi')\n```"
SHELL = "Run:\n```bash\npip install numpy\n```"
PROSE = "You can use a for loop to add numbers."
CUT = "Sure!\n```python\ndef f(x):\n    return [i for i in range(x)"
CUT_BUT_VALID = "```py\nx = 1\ny = 2\n"


def test_fenced_blocks_with_their_language_and_closing() -> None:
    blocks = code_blocks("a\n~~~~ Python extra\nx = 1\n~~~~\nb\n```js\nlet y\n```\n```\nz")
    assert [(b.language, b.code, b.closed) for b in blocks] == [
        ("python", "x = 1\n", True), ("js", "let y\n", True), ("", "z", False)]
    assert code_blocks("````\n```\ninner\n```\n````") [0].code == "```\ninner\n```\n"
    assert code_blocks("inline ```x``` is no block") == []


def test_python_parses_needs_a_python_block_that_parses() -> None:
    assert python_parses(GOOD) and python_parses(UNTAGGED) and python_parses(CUT_BUT_VALID)
    assert not python_parses(BROKEN)
    assert not python_parses(SHELL)  # no Python block
    assert not python_parses(PROSE)
    assert not python_parses(CUT)  # cut by the length limit mid-expression
    assert not python_parses(GOOD + "\n" + BROKEN)  # every Python block must parse


def test_response_stats_counts() -> None:
    stats = response_stats([GOOD, BROKEN, SHELL, PROSE])
    assert (stats.responses, stats.fenced, stats.python, stats.parsing) == (4, 3, 2, 1)
    assert stats.mean_chars == sum(map(len, [GOOD, BROKEN, SHELL, PROSE])) / 4
    assert response_stats([]).responses == 0


def _battle(iid: str, attacker: str, defender: str, a: str, d: str) -> dict:
    return {"instruction_id": iid, "attacker": attacker, "defender": defender,
            "response_attacker": a, "response_defender": d}


def test_battle_section_counts_each_answer_once_per_instruction() -> None:
    rows = [_battle("i1", "qwen", "smol", GOOD, PROSE),
            _battle("i1", "qwen", "other", GOOD, BROKEN),  # qwen's i1 answer fights twice
            _battle("i2", "smol", "qwen", SHELL, UNTAGGED)]
    assert battle_answers(rows) == {"other": [BROKEN], "qwen": [GOOD, UNTAGGED],
                                    "smol": [PROSE, SHELL]}
    text = battle_code_section(rows).markdown
    assert "| qwen | 2 | 2/2 (100%) | 2/2 (100%) | 2/2 (100%) |" in text
    assert "| smol | 2 | 1/2 (50%) | 0/2 (0%) | 0/2 (0%) |" in text


def test_target_section_compares_chosen_with_losers() -> None:
    rows = [
        {"response": GOOD, "winner": "qwen",
         "candidates": [{"expert": "qwen", "response": GOOD},
                        {"expert": "smol", "response": PROSE}]},
        {"response": SHELL, "winner": "smol",
         "candidates": [{"expert": "smol", "response": SHELL},
                        {"expert": "qwen", "response": BROKEN}]},
    ]
    split, experts = target_groups(rows)
    assert split == {"chosen targets": [GOOD, SHELL], "losing candidates": [PROSE, BROKEN]}
    assert experts["qwen (all its candidates)"] == [GOOD, BROKEN]
    assert experts["qwen (chosen)"] == [GOOD]
    text = target_code_section(rows).markdown
    assert "| chosen targets | 2 | 2/2 (100%) | 1/2 (50%) | 1/2 (50%) |" in text
    assert "| losing candidates | 2 | 1/2 (50%) | 1/2 (50%) | 0/2 (0%) |" in text
