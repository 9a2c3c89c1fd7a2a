"""Near-duplicate removal of 1,000,000 short synthetic instructions: time and peak memory.

    python benchmarks/dedup.py                  # 1,000,000 rows, plus datasketch on a sample
    python benchmarks/dedup.py --rows 100000 --datasketch-rows 0

The data: instructions of 12-40 words drawn from a coding vocabulary; 3% of rows are exact
copies (different whitespace) of an earlier row and 5% are near copies (one word changed or
inserted near the end). The table reports rows found, and the recall on planted near copies
whose exact Jaccard similarity with their source is at least the threshold. datasketch
(`MinHash.bulk` + `MinHashLSH` query-then-insert with the same bands, without the exact
verification) runs on a sample and is extrapolated linearly to the full size.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from warriorcoder.scoring.dedup import deduplicate, lsh_bands

VOCAB_TEXT = (
    "write a python function that returns the sum of list numbers string reverse sort "
    "dictionary keys values class method implement algorithm binary search tree graph "
    "shortest path dynamic programming matrix multiply parse json file read csv count "
    "words unique elements merge two sorted arrays linked list node stack queue recursion "
    "fibonacci prime factor palindrome anagram substring regex validate email http "
    "request async await thread pool cache decorator generator iterator exception handle "
    "test case given input output example efficient complexity memory optimize refactor "
    "explain bug"
)


def make_rows(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Synthetic rows and, per row, the earlier row it near-copies (-1 if none)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(VOCAB_TEXT.split() + [f"name{i}" for i in range(20_000)])
    rows: list[str] = []
    planted = np.full(count, -1, dtype=np.int64)
    kinds = rng.random(count)
    lengths = rng.integers(12, 41, size=count)
    for i in range(count):
        if i > 10 and kinds[i] < 0.03:
            source = int(rng.integers(0, i))
            rows.append("  " + rows[source].replace(" ", "   ", 2) + "\n")
        elif i > 10 and kinds[i] < 0.08:
            source = int(rng.integers(0, i))
            words = rows[source].split()
            if rng.random() < 0.5:
                words[-1] = str(rng.choice(vocab))  # change the last word
            else:
                words.insert(len(words) - 1, str(rng.choice(vocab)))  # insert one near the end
            rows.append(" ".join(words))
            planted[i] = source
        else:
            rows.append(" ".join(rng.choice(vocab, size=int(lengths[i]))))
    return rows, planted


def jaccard(a: str, b: str, size: int) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}

    first, second = grams(a), grams(b)
    return len(first & second) / len(first | second)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def datasketch_seconds(rows: list[str], threshold: float, num_perm: int, size: int) -> float:
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    shingle_sets = []
    for text in rows:
        words = text.lower().split()
        grams = {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}
        shingle_sets.append([gram.encode() for gram in grams])
    hashes = MinHash.bulk(shingle_sets, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))  # our bands
    for i, minhash in enumerate(hashes):
        if not lsh.query(minhash):
            lsh.insert(i, minhash)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--datasketch-rows", type=int, default=20_000)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--shingle-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    rows, planted = make_rows(args.rows, args.seed)
    made = time.perf_counter() - start
    before = peak_rss_mb()
    start = time.perf_counter()
    result = deduplicate(rows, args.threshold, args.num_perm, args.shingle_size, args.seed)
    ours = time.perf_counter() - start
    after = peak_rss_mb()

    bands, per_band = lsh_bands(args.threshold, args.num_perm)
    near_found = int(result.near.sum())
    exact_found = int((~result.kept & ~result.near).sum())
    planted_rows = [
        i
        for i in np.flatnonzero(planted >= 0).tolist()
        if jaccard(rows[i], rows[planted[i]], args.shingle_size) >= args.threshold
    ]
    recall = float((~result.kept[planted_rows]).mean())
    print(f"rows {args.rows:,} (generated in {made:.1f} s); LSH {bands} bands x {per_band} rows")
    header = (
        f"{'method':<22} {'seconds':>9} {'peak RSS MB':>12} {'+MB':>7} {'exact':>8} {'near':>8}"
    )
    print(header)
    print("-" * len(header))
    print(
        f"{'warriorcoder (numpy)':<22} {ours:>9.1f} {after:>12.0f} {after - before:>7.0f} "
        f"{exact_found:>8,} {near_found:>8,}"
    )
    print(f"recall of planted near copies: {recall:.3f} ({len(planted_rows):,} planted)")
    if args.datasketch_rows:
        sample = rows[: args.datasketch_rows]
        seconds = datasketch_seconds(sample, args.threshold, args.num_perm, args.shingle_size)
        scaled = seconds * args.rows / len(sample)
        print(
            f"{'datasketch':<22} {scaled:>9.1f} (extrapolated from {len(sample):,} rows: "
            f"{seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
