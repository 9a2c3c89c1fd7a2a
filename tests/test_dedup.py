import numpy as np
import pytest
from datasketch import MinHashLSH

from warriorcoder.scoring.dedup import (
    dedup_key,
    deduplicate,
    exact_duplicates,
    lsh_bands,
    near_duplicates,
    normalize_instruction,
)


def sentence(rng: np.random.Generator, words: int = 30) -> str:
    return " ".join(f"w{int(i)}" for i in rng.integers(0, 5000, size=words))


def test_normalize_instruction_keeps_code_indentation():
    text = "\r\n  Write a function:  \r\n\n\n\ndef f():\n    return 1   \n"
    assert normalize_instruction(text) == "Write a function:\n\ndef f():\n    return 1"
    assert dedup_key(" a \n\t b  ") == "a b"


def test_exact_duplicates_keep_the_first():
    rows = ["sort a list", "reverse a string", "sort  a\nlist ", "sort a list", "Sort a list"]
    result = exact_duplicates(rows)
    assert result.absorbed_by.tolist() == [-1, -1, 0, 0, -1]
    assert result.absorbed_count.tolist() == [2, 0, 0, 0, 0]
    assert not result.near.any()


def test_near_duplicates_planted():
    rng = np.random.default_rng(0)
    rows = [sentence(rng) for _ in range(400)]
    planted = {}
    for source in (3, 50, 50, 120, 399):
        words = rows[source].split()
        words[-1] = "changed"  # one shingle of 26 differs: Jaccard 25/27
        planted[len(rows)] = source
        rows.append(" ".join(words))
    rows.append(" ".join(rows[7].split()[:12]))  # a prefix: Jaccard 8/26, not a near dup
    result = near_duplicates(rows, threshold=0.7, num_perm=128, shingle_size=5)
    absorbed = {int(i): int(result.absorbed_by[i]) for i in np.flatnonzero(~result.kept)}
    # The second near copy of row 50 is identical to the first; it still goes to row 50.
    assert absorbed == planted
    assert result.near[list(planted)].all()
    assert result.similarity[len(rows) - 6] == pytest.approx(25 / 27)
    assert result.absorbed_count[50] == 2
    assert result.kept[:400].all() and result.kept[-1]


def test_rows_are_compared_with_kept_rows_only():
    rng = np.random.default_rng(1)
    base = sentence(rng, 20).split()
    a = " ".join(base)
    b = " ".join(base[:-3] + ["x1", "x2", "x3"])  # 3 of 16 shingles differ: Jaccard 13/19
    c = " ".join(["y1", "y2", "y3"] + b.split()[3:])  # near b (13/19), not near a (10/22)
    assert near_duplicates([b, c], threshold=0.6).absorbed_by.tolist() == [-1, 0]
    # b is absorbed by a, so c has no kept row to join: no chaining through b.
    assert near_duplicates([a, b, c], threshold=0.6).absorbed_by.tolist() == [-1, 0, -1]


def test_short_and_empty_rows():
    result = near_duplicates(["", "hi there", "hi there", "", "bye"], shingle_size=5)
    # A row shorter than the shingle is one shingle; empty rows are never near duplicates.
    assert result.absorbed_by.tolist() == [-1, -1, 1, -1, -1]


def test_deduplicate_routes_exact_copies_to_the_final_keeper():
    rng = np.random.default_rng(2)
    first = sentence(rng)
    near = first.rsplit(" ", 1)[0] + " other"
    rows = [first, near, "  " + near, sentence(rng)]
    result = deduplicate(rows)
    assert result.absorbed_by.tolist() == [-1, 0, 0, -1]
    assert result.near.tolist() == [False, True, False, False]
    assert result.absorbed_count.tolist() == [2, 0, 0, 0]
    assert result.similarity[2] == result.similarity[1] < 1


def test_lsh_bands_match_datasketch():
    for threshold, num_perm, weight in ((0.7, 128, 0.5), (0.7, 128, 0.8), (0.5, 64, 0.5)):
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(1 - weight, weight))
        assert lsh_bands(threshold, num_perm, weight) == (lsh.b, lsh.r)


def test_deterministic_and_validates():
    rng = np.random.default_rng(3)
    rows = [sentence(rng, 8) for _ in range(50)] * 2
    first = near_duplicates(rows, seed=1)
    again = near_duplicates(rows, seed=1)
    assert np.array_equal(first.absorbed_by, again.absorbed_by)
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(rows, threshold=0)
    with pytest.raises(TypeError, match="row 1"):
        exact_duplicates(["a", None])


def test_all_distinct_rows_are_all_kept():
    rng = np.random.default_rng(3)
    texts = [sentence(rng) for _ in range(5)]
    result = near_duplicates(texts, shingle_size=5)
    assert result.kept.all() and not result.near.any()
    assert deduplicate(texts).kept.all()
