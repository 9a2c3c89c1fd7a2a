"""The `warriorcoder check-arena` table again, on a range of its problems, from its JSON file.

    python benchmarks/check_arena_split.py docs/check-arena-164.json --first 101 --last 164

For a held-out look: a mode designed while looking at some problems, scored on the others. The
figures are recomputed with check-arena's own scoring (`arena_check.score_mode`) from the
targets and the per-expert hidden-test results that the JSON holds; the best expert is the best
on the range.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from warriorcoder.evaluation.arena_check import ArenaCheck, score_mode


def subset(report: dict, first: int, last: int) -> ArenaCheck:
    """The check on problems `first`..`last` (1-based, inclusive, in the file's order)."""
    problems = report["problems"][first - 1:last]
    experts = list(report["experts"])
    passed = {e: {p: p in set(report["experts"][e]["passed"]) for p in problems}
              for e in experts}
    check = ArenaCheck(problems, experts, passed)
    check.modes = [score_mode(check, mode["mode"], mode["targets"]) for mode in report["modes"]]
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="check-arena's --output JSON")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--last", type=int, default=None)
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    last = args.last or len(report["problems"])
    print(f"problems {args.first}-{last} of {args.report}")
    print(subset(report, args.first, last).table())


if __name__ == "__main__":
    main()
