"""Can the judges tell a right answer from a wrong one? Known pairs, judged as `judge` does.

Each pair is a HumanEval problem, asked with EvalPlus's instruction, and two answers in the same
form (a fenced program, both rendered by `ast.unparse`, so layout gives nothing away): the
canonical solution, which passes the problem's tests, and a wrong one of a chosen kind:

- `mutant`: the canonical solution with one operator or constant changed (`<` to `>=`, `+` to
  `-`, `and` to `or`, `n` to `n + 1`, ...), kept only when it fails the tests in the sandbox: a
  subtle bug, the kind of difference battles between good experts turn on;
- `swap`: the canonical solution of another problem: an answer to the wrong question, which
  any judge that reads the answers should reject.

Every judge votes on every pair in both orders with the judge phase's prompt (paper Table 7),
sampling, guided decoding and retries, through the journal (a rerun sends nothing). Per judge
and kind the report gives the share of votes that pick the right answer (0.5 is a coin, or a
judge that always names the first answer), ties, invalid votes, the share of decided votes
that name the answer shown first, and the pairs decided right in both orders.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from warriorcoder.builders.judge import vote_request
from warriorcoder.config import ArenaConfig
from warriorcoder.errors import EvaluationError
from warriorcoder.evaluation.benchmarks import Problem, load_human_eval
from warriorcoder.evaluation.prompts import instruction
from warriorcoder.evaluation.scoring import PASS, Settings, check_solution
from warriorcoder.generation import ExpertPool
from warriorcoder.generation.parsed import generate_parsed
from warriorcoder.generation.types import ChatRequest
from warriorcoder.sandbox import detect_isolation
from warriorcoder.scoring.seeds import derive_seed
from warriorcoder.scoring.verdicts import Verdict, parse_verdict

PairKind = Literal["mutant", "swap"]
PAIR_KINDS: tuple[PairKind, ...] = ("mutant", "swap")
RIGHT_FIRST, WRONG_FIRST = "right_first", "wrong_first"
MUTANTS_TRIED = 8
"""Mutants of one problem run against its tests before the problem is passed over."""

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BINARY_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Mod: ast.FloorDiv,
}
_SYMBOLS = {ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.Eq: "==",
            ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
            ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//",
            ast.Div: "/", ast.Mod: "%", ast.And: "and", ast.Or: "or"}


@dataclass(frozen=True)
class KnownPair:
    """One problem with a right and a wrong answer (both fenced programs)."""

    task_id: str
    kind: PairKind
    instruction: str
    right: str
    wrong: str
    change: str
    """How the wrong answer was made: `line 7: < -> >=` (a line of the answer's program), or
    `HumanEval/12's solution`."""


@dataclass(frozen=True)
class CheckVote:
    """One vote on a known pair: which answer was shown first, and what the judge said."""

    judge: str
    task_id: str
    kind: PairKind
    order: str
    verdict: Verdict | None
    attempts: int
    judgement: str

    @property
    def picked(self) -> Literal["right", "wrong", "tie", "invalid"]:
        if self.verdict is None:
            return "invalid"
        if self.verdict == "Tie":
            return "tie"
        first_is_right = self.order == RIGHT_FIRST
        return "right" if (self.verdict == "A") == first_is_right else "wrong"


@dataclass(frozen=True)
class JudgeScore:
    """One judge's votes on one kind of pair."""

    judge: str
    kind: PairKind
    pairs: int
    votes: int
    right: int
    wrong: int
    tie: int
    invalid: int
    first_shown: int
    """Decided (A or B) votes that name the answer shown first."""
    both_orders_right: int

    @property
    def accuracy(self) -> float:
        return self.right / self.votes if self.votes else 0.0

    @property
    def first_shown_share(self) -> float | None:
        decided = self.right + self.wrong
        return self.first_shown / decided if decided else None


@dataclass
class JudgeCheck:
    """The pairs, every vote, and the scores per (judge, kind)."""

    pairs: list[KnownPair]
    votes: list[CheckVote]
    skipped: dict[str, str] = field(default_factory=dict)
    """Problems passed over, with why (no mutant of theirs failed the tests, ...)."""

    @property
    def scores(self) -> list[JudgeScore]:
        return score_votes(self.votes)

    def table(self) -> str:
        """A markdown table of the scores."""
        lines = ["| judge | pairs | wrong answer | votes | picks right | picks wrong | tie "
                 "| invalid | names the first shown | pairs right in both orders |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for s in self.scores:
            first = "-" if s.first_shown_share is None else f"{s.first_shown_share:.2f}"
            lines.append(
                f"| {s.judge} | {s.pairs} | {s.kind} | {s.votes} | {s.right} ({s.accuracy:.2f}) "
                f"| {s.wrong} | {s.tie} | {s.invalid} | {first} | {s.both_orders_right} |")
        return "\n".join(lines)


def score_votes(votes: Sequence[CheckVote]) -> list[JudgeScore]:
    """Scores per (judge, kind), in the order the votes name them."""
    groups: dict[tuple[str, PairKind], list[CheckVote]] = {}
    for vote in votes:
        groups.setdefault((vote.judge, vote.kind), []).append(vote)
    scores = []
    for (judge, kind), group in groups.items():
        picks = [v.picked for v in group]
        right_by_pair: dict[str, list[bool]] = {}
        for vote in group:
            right_by_pair.setdefault(vote.task_id, []).append(vote.picked == "right")
        first = sum(1 for v in group if v.picked in ("right", "wrong") and v.verdict == "A")
        scores.append(JudgeScore(
            judge=judge, kind=kind, pairs=len(right_by_pair), votes=len(group),
            right=picks.count("right"), wrong=picks.count("wrong"), tie=picks.count("tie"),
            invalid=picks.count("invalid"), first_shown=first,
            both_orders_right=sum(len(r) == 2 and all(r) for r in right_by_pair.values())))
    return scores


def _fenced(program: str) -> str:
    return f"```python\n{program}\n```"


def _mutation_sites(tree: ast.AST, first_line: int) -> list[tuple[ast.AST, int]]:
    """(node, operand index) of every operator or int constant at or after `first_line`."""
    sites: list[tuple[ast.AST, int]] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) < first_line:
            continue
        if isinstance(node, ast.Compare):
            sites += [(node, i) for i, op in enumerate(node.ops) if type(op) in _COMPARE_SWAPS]
        elif _mutable(node):
            sites.append((node, 0))
    return sites


def _mutable(node: ast.AST) -> bool:
    """An arithmetic operator we swap, `and`/`or`, or an int literal."""
    if isinstance(node, ast.BinOp | ast.AugAssign):
        return type(node.op) in _BINARY_SWAPS
    return isinstance(node, ast.BoolOp) or (isinstance(node, ast.Constant)
                                            and type(node.value) is int)


def _apply(node: ast.AST, index: int) -> str:
    """Change one site in place; returns what changed (`< -> >=`)."""
    if isinstance(node, ast.Compare):
        old = type(node.ops[index])
        node.ops[index] = _COMPARE_SWAPS[old]()
        return f"{_SYMBOLS[old]} -> {_SYMBOLS[_COMPARE_SWAPS[old]]}"
    if isinstance(node, ast.BinOp | ast.AugAssign):
        old = type(node.op)
        node.op = _BINARY_SWAPS[old]()
        return f"{_SYMBOLS[old]} -> {_SYMBOLS[_BINARY_SWAPS[old]]}"
    if isinstance(node, ast.BoolOp):
        old = type(node.op)
        node.op = ast.Or() if old is ast.And else ast.And()
        return f"{_SYMBOLS[old]} -> {_SYMBOLS[type(node.op)]}"
    assert isinstance(node, ast.Constant)
    node.value += 1
    return f"{node.value - 1} -> {node.value}"


def mutants(problem: Problem, seed: int) -> Iterator[tuple[str, str]]:
    """(program, change) for single-site mutants of the canonical solution, in a seeded order;
    the prompt (signature, docstring) is never changed."""
    source = problem.prompt + problem.canonical_solution
    first_line = problem.prompt.count("\n") + 1
    count = len(_mutation_sites(ast.parse(source), first_line))
    order = list(range(count))
    random.Random(derive_seed("mutant", seed, problem.task_id)).shuffle(order)
    right = right_program(problem).splitlines()
    for index in order:
        tree = ast.parse(source)
        node, operand = _mutation_sites(tree, first_line)[index]
        change = _apply(node, operand)
        program = ast.unparse(tree)
        line = next((number for number, (a, b) in enumerate(
            zip(right, program.splitlines(), strict=False), 1) if a != b), 0)
        yield program, f"line {line}: {change}"


def right_program(problem: Problem) -> str:
    """The canonical solution as `ast.unparse` renders it (the form every answer takes)."""
    return ast.unparse(ast.parse(problem.prompt + problem.canonical_solution))


def build_pairs(count: int, kinds: Sequence[PairKind], seed: int = 0,
                settings: Settings | None = None,
                problems: Sequence[Problem] | None = None
                ) -> tuple[list[KnownPair], dict[str, str]]:
    """`count` pairs of each kind from HumanEval problems in a seeded order, and the problems
    passed over with why. Every right answer passes its tests and every mutant fails them
    (both run in the sandbox). Raises `EvaluationError` when too few problems qualify."""
    unknown = sorted(set(kinds) - set(PAIR_KINDS))
    if unknown or not kinds:
        raise EvaluationError(f"--kinds: choose from {', '.join(PAIR_KINDS)}, got {unknown}")
    settings = settings or Settings()
    settings = dataclasses.replace(settings, isolation=settings.isolation or detect_isolation())
    pool = list(problems if problems is not None else load_human_eval().problems)
    random.Random(derive_seed("judge-check", seed)).shuffle(pool)
    chosen: list[tuple[Problem, str, tuple[str, str] | None]] = []
    skipped: dict[str, str] = {}
    for problem in pool:
        if len(chosen) >= count:
            break
        right = right_program(problem)
        check = check_solution(problem, right, None, settings)
        if check.base_status != PASS:
            skipped[problem.task_id] = f"its canonical solution did not pass ({check.error})"
            continue
        failing = None
        if "mutant" in kinds:
            tried = itertools.islice(mutants(problem, seed), MUTANTS_TRIED)
            failing = next((m for m in tried
                            if check_solution(problem, m[0], None, settings).base_status != PASS),
                           None)
            if failing is None:
                skipped[problem.task_id] = (f"none of the first {MUTANTS_TRIED} mutants "
                                            "failed its tests")
                continue
        chosen.append((problem, right, failing))
    if len(chosen) < count:
        raise EvaluationError(f"judge check: only {len(chosen)} HumanEval problems gave pairs, "
                              f"{count} asked for; lower --pairs")
    pairs = []
    for kind in kinds:
        for position, (problem, right, failing) in enumerate(chosen):
            if kind == "mutant":
                assert failing is not None
                wrong, change = failing
            else:
                other, other_right, _ = chosen[(position + 1) % len(chosen)]
                wrong, change = other_right, f"{other.task_id}'s solution"
            pairs.append(KnownPair(problem.task_id, kind, instruction(problem), _fenced(right),
                                   _fenced(wrong), change))
    return pairs, skipped


def judge_names(config: ArenaConfig, judges: Sequence[str] | None = None) -> list[str]:
    """The judges to check: `judges`, else `judge.judges`, else every expert. Raises
    `EvaluationError` naming any that is not an expert of the config."""
    names = list(judges or config.judge.judges or config.expert_names)
    unknown = sorted(set(names) - set(config.expert_names))
    if unknown:
        raise EvaluationError(f"--judges: {unknown} are not experts of the config "
                              f"({', '.join(config.expert_names)})")
    return names


def check_judges(config: ArenaConfig, pairs: Sequence[KnownPair],
                 judges: Sequence[str] | None = None, *, progress: bool | None = None,
                 ) -> list[CheckVote]:
    """Every judge's votes on every pair, in both orders, asked as the `judge` phase asks.

    Raises `EvaluationError` for a judge that is not an expert of the config, and what
    `ExpertPool.run` raises when calls fail for good."""
    names = judge_names(config, judges)
    items = [(judge, pair, order) for judge in names for pair in pairs
             for order in (RIGHT_FIRST, WRONG_FIRST)]

    def request(item: tuple[str, KnownPair, str], attempt: int) -> ChatRequest:
        judge, pair, order = item
        answers = (pair.right, pair.wrong) if order == RIGHT_FIRST else (pair.wrong, pair.right)
        seed = derive_seed("judge-check", config.judge.seed, pair.task_id, pair.kind, judge,
                           order, attempt)
        return vote_request(config.judge, judge, pair.instruction, *answers, seed=seed,
                            attempt=attempt)

    with ExpertPool.from_config(config, progress=progress) as pool:
        outcomes = generate_parsed(pool, items, request, parse_verdict,
                                   max_attempts=config.judge.max_attempts, desc="judge check")
    return [CheckVote(judge, pair.task_id, pair.kind, order, outcome.value, outcome.attempts,
                      outcome.result.text if outcome.result.ok else outcome.result.error or "")
            for (judge, pair, order), outcome in zip(items, outcomes, strict=True)]
