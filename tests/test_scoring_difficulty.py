import math

import pytest

from warriorcoder.scoring.difficulty import (
    DIFFICULTY_PROMPT,
    difficulty_level,
    parse_difficulty,
    render_difficulty_prompt,
    score_regex,
)


def test_prompt_has_the_papers_four_levels_and_asks_for_a_final_score():
    for text in (
        "- Excellent (9-10): For instructions that are very clear, specific, and well-articulated. "
        "These instructions are particularly challenging and excellently designed to assess the "
        "AI's proficiency.",
        "- Good (6-8): For instructions that are clear and specific instructions. These are not "
        "overly difficult to answer and moderately assess the AI's capabilities.",
        "- Average (3-5): For instructions that are fairly clear and specific instructions. These "
        "instructions are easy to answer.",
        "- Poor (1-2): For instructions that are ambiguous or unclear.",
    ):
        assert text in DIFFICULTY_PROMPT
    assert '"Score: N"' in DIFFICULTY_PROMPT


def test_render_inserts_the_instruction_verbatim():
    prompt = render_difficulty_prompt("Implement {x} in Python.")
    assert "[[Instruction]]\nImplement {x} in Python.\n[[End of Instruction]]" in prompt


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Clear and specific, moderately hard.\nScore: 7", 7),
        ("Score: 7/10", 7),
        ("Very challenging.\n\n**Score:** 10\n", 10),
        ("Ambiguous.\nFinal score: 2 (Poor).", 2),
        ("score = 6", 6),
        ("I'd give it a 7.", None),  # no explicit score line
        ("Score: 7\nHope this helps!", None),  # the score is not the final line
        ("Score: 0", None),
        ("Score: 11", None),
        ("Score: 7.5", None),
        ("Score: 6-8", None),
        ("Score: 6\nOn reflection:\nScore: 8", None),  # two different final scores
        ("Score: 8\nScore: 8", 8),
        ("", None),
    ],
)
def test_parse_difficulty(reply, expected):
    assert parse_difficulty(reply) == expected


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (10, "Excellent"),
        (9, "Excellent"),
        (8.99, "Good"),
        (6, "Good"),
        (5.5, "Average"),  # a mean below 6 is not Good: it would not be kept either
        (3, "Average"),
        (2.99, "Poor"),
        (1, "Poor"),
    ],
)
def test_difficulty_level_bins(score, level):
    assert difficulty_level(score) == level


@pytest.mark.parametrize("score", [0, 10.5, math.nan, "7"])
def test_difficulty_level_rejects_out_of_range(score):
    with pytest.raises(ValueError, match=r"in \[1, 10\]"):
        difficulty_level(score)


@pytest.mark.parametrize(
    ("reply", "score"),
    [("Clear and specific.\nScore: 7", 7), ("x\nScore: 10", 10), ("Easy!\nScore: 1", 1)],
)
def test_every_guided_reply_parses(reply, score):
    import regex

    assert regex.fullmatch(score_regex(40), reply)
    assert parse_difficulty(reply) == score


@pytest.mark.parametrize("reply", ["Score: 3\nScore: 7", "a 5/10 task\nScore: 5", "x\nScore: 0",
                                   "x\nScore: 11", "\nScore: 7"])
def test_guided_regex_rules_out_ambiguous_replies(reply):
    import regex

    assert regex.fullmatch(score_regex(40), reply) is None
