"""Executions per second of (answer, test) pairs in the sandbox, per isolation, beside an
unsandboxed `subprocess` floor; and the paper's scale projected onto a 64-core node.

    .venv/bin/python benchmarks/execution.py [--answers 40] [--tests 7] [--workers 2]

Workload: HumanEval/0-sized answers (half right, half wrong) with `--tests` assert tests each.
Floors: one plain `python -I` process per answer running its code and all its asserts (what
batching costs without any sandbox), and one per pair. Sandboxed: `sandbox.run_many` (one fresh
sandboxed process per answer, asserts decided in the parent), no cache. Projection: 70,000
battles x 2 answers x `--tests` tests x `--judges` test authors, at the measured rate per core
times 64 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from warriorcoder.sandbox import ISOLATIONS, Limits, run_many
from warriorcoder.sandbox.isolation import _probe

RIGHT = """
from typing import List

def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False
"""
WRONG = RIGHT.replace("return True", "return False")
TESTS = [
    "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True",
    "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False",
    "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True",
    "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False",
    "assert has_close_elements([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1) == True",
    "assert has_close_elements([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True",
    "assert has_close_elements([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False",
    "assert not has_close_elements([], 1.0)",
    "assert has_close_elements([0.0, 0.0], 0.1) is True",
    "assert has_close_elements([10.0, 20.0], 5.0) == False",
]
PAPER_BATTLES = 70_000


def _jobs(answers: int, tests: int) -> list[tuple[str, list[str]]]:
    # a distinct comment per answer: no two answers share a cache key or a byte-compiled form
    return [((RIGHT if i % 2 == 0 else WRONG) + f"# answer {i}\n", TESTS[:tests])
            for i in range(answers)]


def _plain(program: str) -> None:
    subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, timeout=60,
                   check=False)


def _floor(jobs: list[tuple[str, list[str]]], workers: int, per_pair: bool) -> float:
    programs = []
    for code, tests in jobs:
        if per_pair:
            programs += [f"{code}\n{test}\n" for test in tests]
        else:
            body = "".join(f"try:\n    {t}\nexcept AssertionError:\n    pass\n" for t in tests)
            programs.append(f"{code}\n{body}")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_plain, programs))
    return time.perf_counter() - started


def _sandboxed(jobs: list[tuple[str, list[str]]], workers: int, isolation: str) -> float:
    started = time.perf_counter()
    outcomes = run_many(jobs, Limits(test_time_s=4.0), isolation, workers=workers)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    right = [o.status for o in outcomes[0]]
    assert set(right) == {"pass"}, f"{isolation}: the right answer did not pass: {outcomes[0]}"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--tests", type=int, default=7, help="tests per answer (max 10)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--judges", type=int, default=3, help="test authors per battle")
    parser.add_argument("--cores", type=int, default=64)
    args = parser.parse_args()
    jobs = _jobs(args.answers, min(args.tests, len(TESTS)))
    pairs = sum(len(t) for _, t in jobs)
    rows: list[tuple[str, float]] = []
    floor = _floor(jobs, args.workers, per_pair=False)
    rows.append(("subprocess, one per answer (floor)", pairs / floor))
    rows.append(("subprocess, one per pair", pairs / _floor(jobs, args.workers, per_pair=True)))
    for isolation in ISOLATIONS:
        if isolation != "guards" and not _probe(isolation):
            rows.append((f"{isolation} (not available here)", float("nan")))
            continue
        rows.append((f"sandbox: {isolation}", pairs / _sandboxed(jobs, args.workers, isolation)))
    floor_rate = rows[0][1]
    paper_pairs = PAPER_BATTLES * 2 * args.tests * args.judges
    # each answer's tests from every judge run in one process: tests per process = tests*judges
    print(f"{args.answers} answers x {len(jobs[0][1])} tests = {pairs} pairs, "
          f"{args.workers} workers on {os.cpu_count()} cores; paper scale: "
          f"{PAPER_BATTLES} battles x 2 answers x {args.tests} tests x {args.judges} judges "
          f"= {paper_pairs:,} pairs on {args.cores} cores")
    print(f"| how | pairs/s ({os.cpu_count()} cores) | x floor | paper scale on "
          f"{args.cores} cores |")
    print("|---|---:|---:|---:|")
    cores = os.cpu_count() or 2
    for name, rate in rows:
        if rate != rate:  # nan
            print(f"| {name} | - | - | - |")
            continue
        hours = paper_pairs / (rate / cores * args.cores) / 3600
        print(f"| {name} | {rate:.1f} | {floor_rate / rate:.2f} | {hours * 60:.0f} min |")
    print("(the projection counts one process per answer and its", args.tests,
          "tests; batching all judges' tests of an answer into one process is faster still)")


if __name__ == "__main__":
    main()
