"""Exact and near-duplicate instructions: normalisation, exact keys, MinHash LSH.

Rows are given in priority order (the filter phase passes them sorted by id): of a group of
duplicates the first row is kept and absorbs the later ones.

Near duplicates use MinHash LSH over word n-gram shingles, vectorised in numpy (the same
scheme as `datasketch.MinHashLSH`: `num_perm` hash functions, bands chosen to minimise the
weighted false positive and false negative areas around `threshold`; false negatives weigh
more by default since every candidate is verified). LSH only proposes candidates; a
candidate pair is confirmed when the exact Jaccard similarity of the two shingle sets is at
least `threshold`. As with `MinHashLSH` queried before each insert, a row is compared with the
rows kept so far only, so absorbed rows never chain. `benchmarks/dedup.py` compares the speed
with datasketch.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_MASK32 = np.uint64(0xFFFFFFFF)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0x100000001B3)
_BLANK_LINES = re.compile(r"\n{3,}")
_CHUNK_ROWS = 65_536


def normalize_instruction(text: str) -> str:
    """Whitespace normalisation for storage: unify line ends, drop trailing spaces on each line
    and blank runs beyond one empty line, strip the ends. Indentation (code) is kept."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    joined = "\n".join(line.rstrip() for line in lines)
    return _BLANK_LINES.sub("\n\n", joined).strip()


def dedup_key(text: str) -> str:
    """The exact-duplicate key: every run of whitespace collapsed to one space, ends stripped."""
    return " ".join(text.split())


@dataclass(frozen=True)
class DedupResult:
    """For each input row, the kept row that absorbed it (-1 when the row itself is kept)."""

    absorbed_by: np.ndarray
    """int64 (n,): position of the absorbing kept row, or -1."""
    near: np.ndarray
    """bool (n,): absorbed as a near duplicate (rather than an exact one)."""
    similarity: np.ndarray
    """float64 (n,): Jaccard similarity with the absorbing row (1.0 exact, NaN for kept rows)."""

    @property
    def kept(self) -> np.ndarray:
        return self.absorbed_by < 0

    @property
    def absorbed_count(self) -> np.ndarray:
        """int64 (n,): rows each kept row absorbed (0 for absorbed rows)."""
        dropped = self.absorbed_by[self.absorbed_by >= 0]
        return np.bincount(dropped, minlength=len(self.absorbed_by)).astype(np.int64)


def exact_duplicates(texts: Sequence[str]) -> DedupResult:
    """Rows whose `dedup_key` equals an earlier row's are absorbed by the first such row."""
    first: dict[str, int] = {}
    absorbed_by = np.full(len(texts), -1, dtype=np.int64)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"row {position}: instruction must be a string, got {type(text).__name__}"
            )
        owner = first.setdefault(dedup_key(text), position)
        if owner != position:
            absorbed_by[position] = owner
    similarity = np.where(absorbed_by >= 0, 1.0, np.nan)
    return DedupResult(absorbed_by, np.zeros(len(texts), dtype=bool), similarity)


def lsh_bands(
    threshold: float, num_perm: int, false_negative_weight: float = 0.8
) -> tuple[int, int]:
    """(bands, rows per band) minimising the weighted false positive and false negative areas,
    as `datasketch.MinHashLSH(weights=(1 - w, w))` does."""
    if not 0 <= false_negative_weight <= 1:
        raise ValueError(f"false_negative_weight must be in [0, 1], got {false_negative_weight}")
    grid = np.linspace(0.0, 1.0, 2001)
    below, above = grid[grid <= threshold], grid[grid >= threshold]
    best, best_error = (1, num_perm), np.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(1 - (1 - below**rows) ** bands, below) if len(below) > 1 else 0.0
            fn = np.trapezoid((1 - above**rows) ** bands, above) if len(above) > 1 else 0.0
            error = (1 - false_negative_weight) * fp + false_negative_weight * fn
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64, in place where possible)."""
    values = values ^ (values >> np.uint64(30))
    values *= _MIX1
    values ^= values >> np.uint64(27)
    values *= _MIX2
    values ^= values >> np.uint64(31)
    return values


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def _window_hashes(word_hashes: np.ndarray, lengths: np.ndarray, size: int) -> np.ndarray:
    """32-bit hashes of every word `size`-gram of each row (one shingle for a shorter row)."""
    # Lay rows out with size-1 padding tokens (hash 0) after each, then hash every window.
    padded_lengths = np.where(lengths > 0, lengths + size - 1, 0)
    padded_starts = np.cumsum(padded_lengths) - padded_lengths
    flat = np.zeros(int(padded_lengths.sum()) + size, dtype=np.uint64)
    word_starts = np.cumsum(lengths) - lengths
    within = np.arange(len(word_hashes)) - np.repeat(word_starts, lengths)
    flat[np.repeat(padded_starts, lengths) + within] = word_hashes
    window = np.zeros(len(flat) - size + 1, dtype=np.uint64)
    for offset in range(size):
        window *= _POLY
        window += flat[offset : offset + len(window)]
    counts = np.where(lengths > 0, np.maximum(lengths - size + 1, 1), 0)
    ends = np.cumsum(counts)
    take = np.repeat(padded_starts, counts) + (
        np.arange(ends[-1]) - np.repeat(ends - counts, counts)
    )
    return (_mix(window[take]) >> np.uint64(32)).astype(np.uint32)


def _shingles(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of each row's lower-cased word `size`-grams (a row shorter than `size`
    words is one shingle), as a flat array and row offsets (n + 1)."""
    vocabulary: dict[str, int] = {}
    vocabulary_hashes = np.zeros(0, dtype=np.uint64)
    lengths = np.zeros(len(texts), dtype=np.int64)
    parts = []
    for start in range(0, len(texts), _CHUNK_ROWS):  # bounds the live word strings and arrays
        split = [text.lower().split() for text in texts[start : start + _CHUNK_ROWS]]
        chunk_lengths = np.fromiter(map(len, split), np.int64, len(split))
        lengths[start : start + len(split)] = chunk_lengths
        flat_words = list(itertools.chain.from_iterable(split))
        new_words = [word for word in dict.fromkeys(flat_words) if word not in vocabulary]
        for word in new_words:
            vocabulary[word] = len(vocabulary)
        new_hashes = np.fromiter(map(_word_hash, new_words), np.uint64, len(new_words))
        vocabulary_hashes = np.concatenate([vocabulary_hashes, new_hashes])
        ids = np.fromiter(map(vocabulary.__getitem__, flat_words), np.int64, len(flat_words))
        if len(ids):
            parts.append(_window_hashes(vocabulary_hashes[ids], chunk_lengths, size))
    counts = np.where(lengths > 0, np.maximum(lengths - size + 1, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
    return hashes, offsets


def _band_keys(
    hashes: np.ndarray, offsets: np.ndarray, bands: int, rows: int, seed: int
) -> np.ndarray:
    """(n, bands) uint64 keys of each row's MinHash band (rows without shingles: unique 0s)."""
    rng = np.random.default_rng(seed)
    num = bands * rows
    mult = rng.integers(1, 2**63, size=num, dtype=np.uint64) | np.uint64(1)
    add = rng.integers(0, 2**63, size=num, dtype=np.uint64)
    n = len(offsets) - 1
    keys = np.zeros((n, bands), dtype=np.uint64)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        lo, hi = int(offsets[start]), int(offsets[stop])
        local = offsets[start : stop + 1] - lo
        nonempty = np.flatnonzero(local[1:] > local[:-1])
        if len(nonempty) == 0:
            continue
        block = hashes[lo:hi].astype(np.uint64)
        signature = np.empty((len(nonempty), num), dtype=np.uint64)
        for j in range(num):
            permuted = (block * mult[j] + add[j]) >> np.uint64(32)
            signature[:, j] = np.minimum.reduceat(permuted, local[:-1][nonempty])
        for band in range(bands):
            key = np.zeros(len(nonempty), dtype=np.uint64)
            for j in range(band * rows, (band + 1) * rows):
                key = _mix(key * _POLY + signature[:, j])
            keys[start + nonempty, band] = key
    return keys


def near_duplicates(
    texts: Sequence[str],
    threshold: float = 0.7,
    num_perm: int = 128,
    shingle_size: int = 5,
    seed: int = 0,
    false_negative_weight: float = 0.8,
) -> DedupResult:
    """Rows whose word-shingle Jaccard similarity with an earlier kept row is >= `threshold`
    are absorbed by the earliest such row. Rows without words are never near duplicates.

    `false_negative_weight` sets the LSH bands (see `lsh_bands`); the default favours recall
    because candidates are verified exactly (0.5 gives datasketch's default bands).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 1 or shingle_size < 1:
        raise ValueError("num_perm and shingle_size must be at least 1")
    n = len(texts)
    absorbed_by = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    if n == 0:
        return DedupResult(absorbed_by, np.zeros(0, dtype=bool), similarity)
    hashes, offsets = _shingles(texts, shingle_size)
    bands, rows = lsh_bands(threshold, num_perm, false_negative_weight)
    keys = _band_keys(hashes, offsets, bands, rows, seed)
    has_shingles = offsets[1:] > offsets[:-1]

    # Buckets with two or more rows; each row lists the buckets it is in.
    member_rows, member_buckets = [], []
    next_bucket = 0
    for band in range(bands):
        candidates = np.flatnonzero(has_shingles)
        order = candidates[np.argsort(keys[candidates, band], kind="stable")]
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        sizes = np.diff(np.append(starts, len(order)))
        shared = sizes >= 2
        bucket_of_run = np.cumsum(shared) - 1 + next_bucket
        in_shared = np.repeat(shared, sizes)
        member_rows.append(order[in_shared])
        member_buckets.append(np.repeat(bucket_of_run, sizes)[in_shared])
        next_bucket += int(shared.sum())
    all_rows = np.concatenate(member_rows)
    all_buckets = np.concatenate(member_buckets)
    if len(all_rows) == 0:  # no two rows share a bucket: nothing is a near duplicate
        return DedupResult(absorbed_by, np.zeros(n, dtype=bool), similarity)
    by_row = np.lexsort((all_buckets, all_rows))
    all_rows, all_buckets = all_rows[by_row], all_buckets[by_row]
    row_starts = np.flatnonzero(np.concatenate([[True], all_rows[1:] != all_rows[:-1]]))
    row_ends = np.append(row_starts[1:], len(all_rows))

    kept_in: dict[int, list[int]] = {}
    shingle_sets: dict[int, set[int]] = {}

    def shingle_set(row: int) -> set[int]:
        cached = shingle_sets.get(row)
        if cached is None:
            cached = set(hashes[offsets[row] : offsets[row + 1]].tolist())
            shingle_sets[row] = cached
        return cached

    for begin, end in zip(row_starts.tolist(), row_ends.tolist(), strict=True):
        row = int(all_rows[begin])
        buckets = all_buckets[begin:end].tolist()
        partners = sorted({kept for bucket in buckets for kept in kept_in.get(bucket, ())})
        mine = shingle_set(row)
        for partner in partners:
            theirs = shingle_set(partner)
            jaccard = len(mine & theirs) / len(mine | theirs)
            if jaccard >= threshold:
                absorbed_by[row], similarity[row] = partner, jaccard
                break
        else:
            for bucket in buckets:
                kept_in.setdefault(bucket, []).append(row)
        if absorbed_by[row] >= 0:
            shingle_sets.pop(row, None)
    return DedupResult(absorbed_by, absorbed_by >= 0, similarity)


def deduplicate(
    texts: Sequence[str],
    threshold: float = 0.7,
    num_perm: int = 128,
    shingle_size: int = 5,
    seed: int = 0,
    false_negative_weight: float = 0.8,
) -> DedupResult:
    """Exact duplicates first, then near duplicates among the rows left; `absorbed_by` points
    at the final kept row (an exact copy of a near duplicate goes to that one's keeper)."""
    exact = exact_duplicates(texts)
    survivors = np.flatnonzero(exact.kept)
    near = near_duplicates(
        [texts[i] for i in survivors.tolist()],
        threshold,
        num_perm,
        shingle_size,
        seed,
        false_negative_weight,
    )
    absorbed_by = exact.absorbed_by.copy()
    similarity = exact.similarity.copy()
    is_near = np.zeros(len(texts), dtype=bool)
    near_rows = survivors[near.absorbed_by >= 0]
    absorbed_by[near_rows] = survivors[near.absorbed_by[near.absorbed_by >= 0]]
    similarity[near_rows] = near.similarity[near.absorbed_by >= 0]
    is_near[near_rows] = True
    # Exact copies of a row absorbed as a near duplicate follow it to its keeper.
    copies = np.flatnonzero(exact.absorbed_by >= 0)
    owners = exact.absorbed_by[copies]
    moved = absorbed_by[owners] >= 0
    absorbed_by[copies[moved]] = absorbed_by[owners[moved]]
    similarity[copies[moved]] = similarity[owners[moved]]
    return DedupResult(absorbed_by, is_near, similarity)
