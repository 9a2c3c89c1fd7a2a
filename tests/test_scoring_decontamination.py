import json

import pytest

from warriorcoder.assets import humaneval_problems
from warriorcoder.scoring.decontamination import (
    BenchmarkText,
    NgramIndex,
    benchmark_index,
    find_contamination,
    humaneval_texts,
    mbpp_texts,
    words,
)

HUMANEVAL = humaneval_problems()


@pytest.fixture(scope="module")
def index() -> NgramIndex:
    return benchmark_index(HUMANEVAL, n=10)


def test_humaneval_ships_with_the_package():
    texts = humaneval_texts(HUMANEVAL)
    assert len(texts) == 164
    assert texts[0].task_id == "HumanEval/0" and "def has_close_elements" in texts[0].text


def test_planted_humaneval_prompt_is_flagged(index):
    problem = humaneval_texts(HUMANEVAL)[12]
    docstring = problem.text.split('"""')[1]
    instruction = f"Please solve this for me. {docstring.strip()} Use Python 3."
    hit = find_contamination([instruction, "Write a function that adds two numbers."], index)
    assert hit[1] is None
    assert hit[0] is not None
    assert (hit[0].benchmark, hit[0].task_id) == ("HumanEval", problem.task_id)
    assert len(hit[0].ngram.split()) == 10
    assert hit[0].ngram in " ".join(words(docstring))


def test_canonical_solution_is_flagged_whatever_the_layout(index):
    problem = humaneval_texts(HUMANEVAL)[0]
    solution = problem.text[problem.text.index("    for idx") :]
    instruction = "Explain this code:\n" + " ".join(solution.split())
    hit = find_contamination([instruction], index)[0]
    assert hit is not None and hit.task_id == "HumanEval/0"


def test_short_rows_cannot_match():
    index = NgramIndex([BenchmarkText("B", "1", "one two three four five")], n=3)
    assert index.match("one two three").ngram == "one two three"
    assert index.match("one two") is None
    assert index.match("One, TWO;\nthree!").task_id == "1"


def test_mbpp_local_copy(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    problem = {
        "task_id": 11,
        "text": "Write a python function to remove first and last occurrence of a given character "
        "from the string.",
        "code": "def remove_Occ(s,ch): return s",
    }
    path.write_text(json.dumps(problem) + "\n\n")
    assert mbpp_texts(path)[0].task_id == "11"
    rows = ["Write a python function to remove first and last occurrence of a given character."]
    hit = find_contamination(rows, benchmark_index(HUMANEVAL, mbpp_path=path))[0]
    assert (hit.benchmark, hit.task_id) == ("MBPP", "11")


def test_mbpp_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="mbpp_path"):
        mbpp_texts(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": 1, "text": "x", "code": "y"}\n{"task_id": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        mbpp_texts(bad)
