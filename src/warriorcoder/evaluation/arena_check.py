"""Does the arena pick better code than any single expert? `warriorcoder check-arena`.

Over N HumanEval problems, EvalPlus's instruction is the battle instruction: every configured
expert answers every problem (the battle phase's own request), every pair of experts battles,
and for each `judge.execution` mode the judge phase's own builder votes (LLM votes, tests and
execution verdicts: all through the journal and the outcome cache, so a rerun sends nothing
and runs nothing) and select's own builder chooses the targets. Then every answer is scored
with the problem's own tests, which no expert and no test author ever sees.

Per mode: each expert's pass rate, a random pick's (the mean over experts), the oracle's (some
answer passes), the targets' with a percentile bootstrap interval over problems, the paired
bootstrap interval of (targets - best single expert) over the same problems, and selection
accuracy on decisive problems (exactly one expert's answer passes: how often it is the target).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from warriorcoder.builders import judge as judge_phase
from warriorcoder.builders import select as select_phase
from warriorcoder.builders.base import PhaseInput
from warriorcoder.builders.battle import FEATURES as BATTLE_FEATURES
from warriorcoder.builders.battle import answer_request
from warriorcoder.config import ArenaConfig
from warriorcoder.errors import EvaluationError
from warriorcoder.evaluation.benchmarks import Problem, load_human_eval
from warriorcoder.evaluation.prompts import instruction
from warriorcoder.evaluation.scoring import PASS, Settings, check_many
from warriorcoder.generation import ExpertPool
from warriorcoder.scoring.execution_verdicts import MODES
from warriorcoder.scoring.seeds import stable_id

BOOTSTRAP_ROUNDS = 2000


@dataclass(frozen=True)
class ModeResult:
    """One mode's targets (task_id -> expert) and the figures the report shows."""

    mode: str
    targets: dict[str, str]
    target_pass_rate: float
    target_interval: tuple[float, float]
    difference: float
    """Targets' pass rate minus the best single expert's (same problems)."""
    difference_interval: tuple[float, float]
    decisive: int
    decisive_right: int

    @property
    def selection_accuracy(self) -> float | None:
        return self.decisive_right / self.decisive if self.decisive else None


@dataclass
class ArenaCheck:
    """Every answer's hidden-test result, and each mode's targets and figures."""

    problems: list[str]
    experts: list[str]
    passed: dict[str, dict[str, bool]]
    """expert -> task_id -> whether its answer passes the problem's own tests."""
    modes: list[ModeResult] = field(default_factory=list)

    def pass_rate(self, expert: str) -> float:
        return float(np.mean([self.passed[expert][p] for p in self.problems]))

    @property
    def best_expert(self) -> str:
        return max(self.experts, key=lambda e: (self.pass_rate(e), -self.experts.index(e)))

    @property
    def random_pick(self) -> float:
        return float(np.mean([np.mean([self.passed[e][p] for e in self.experts])
                              for p in self.problems]))

    @property
    def oracle(self) -> float:
        return float(np.mean([any(self.passed[e][p] for e in self.experts)
                              for p in self.problems]))

    def table(self) -> str:
        """The report as a markdown table: one row per mode, then the fixed references."""
        best = self.best_expert
        lines = [f"Problems: {len(self.problems)} (HumanEval, EvalPlus's instruction); each "
                 "expert's pass rate on the problems' own tests: "
                 + ", ".join(f"`{e}` {self.pass_rate(e):.3f}" for e in self.experts)
                 + f"; random pick {self.random_pick:.3f}; oracle {self.oracle:.3f}.", "",
                 "| judge.execution | targets' pass rate (95% CI) | minus best expert "
                 f"(`{best}`) (paired 95% CI) | decisive problems | target is the passing "
                 "answer |", "|---|---|---|---|---|"]
        for m in self.modes:
            accuracy = ("-" if m.selection_accuracy is None
                        else f"{m.decisive_right}/{m.decisive} ({m.selection_accuracy:.2f})")
            lines.append(
                f"| {m.mode}{' (LLM votes only: the paper)' if m.mode == 'off' else ''} | "
                f"{m.target_pass_rate:.3f} [{m.target_interval[0]:.3f}, "
                f"{m.target_interval[1]:.3f}] | {m.difference:+.3f} "
                f"[{m.difference_interval[0]:+.3f}, {m.difference_interval[1]:+.3f}] | "
                f"{m.decisive} | {accuracy} |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "experts": {e: {"pass_rate": self.pass_rate(e),
                            "passed": [p for p in self.problems if self.passed[e][p]]}
                        for e in self.experts},
            "best_expert": self.best_expert,
            "random_pick": self.random_pick,
            "oracle": self.oracle,
            "modes": [{**dataclasses.asdict(m), "selection_accuracy": m.selection_accuracy}
                      for m in self.modes],
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def pick_problems(count: int, problems: Sequence[Problem] | None = None) -> list[Problem]:
    """The first `count` HumanEval problems (in task order); raises `EvaluationError` for a
    count out of range."""
    pool = list(problems if problems is not None else load_human_eval().problems)
    if not 1 <= count <= len(pool):
        raise EvaluationError(f"--problems: choose 1 to {len(pool)}, got {count}")
    return pool[:count]


def battles_of(config: ArenaConfig, pool: ExpertPool, problems: Sequence[Problem]
               ) -> datasets.Dataset:
    """Every expert answers every problem (the battle phase's request; identical requests
    once), every pair battles: rows in the `battles` schema."""
    experts = config.expert_names
    requests = {(e, p.task_id): answer_request(config, e, p.task_id, instruction(p))
                for p in problems for e in experts}
    unique = list(dict.fromkeys(requests.values()))
    results = dict(zip(unique, pool.run(unique, desc="check-arena: answers"), strict=True))
    rows = []
    for problem in problems:
        for slot, (attacker, defender) in enumerate(itertools.combinations(experts, 2)):
            row: dict[str, Any] = {
                "battle_id": stable_id("battle", problem.task_id, attacker, defender),
                "instruction_id": problem.task_id, "instruction": instruction(problem),
                "kcenter_rank": None, "attacker": attacker, "defender": defender,
                "defender_slot": slot}
            for side, expert in (("attacker", attacker), ("defender", defender)):
                request = requests[(expert, problem.task_id)]
                result = results[request]
                row.update({
                    f"model_id_{side}": result.model_id,
                    f"model_revision_{side}": result.model_revision,
                    f"seed_{side}": request.params.seed, f"response_{side}": result.text,
                    f"finish_reason_{side}": result.finish_reason,
                    f"tokens_{side}": result.generated_tokens,
                    f"truncated_{side}": result.finish_reason == "length"})
            rows.append(row)
    return datasets.Dataset.from_list(rows, features=BATTLE_FEATURES)


def hidden_results(problems: Sequence[Problem], battles: datasets.Dataset,
                   experts: Sequence[str], settings: Settings | None = None
                   ) -> dict[str, dict[str, bool]]:
    """expert -> task_id -> whether its answer passes the problem's own tests (its code
    extracted and sanitised as the evaluation does, run in the sandbox)."""
    from warriorcoder.sandbox import extract_code

    answers: dict[tuple[str, str], str] = {}
    for row in battles:
        for side in ("attacker", "defender"):
            answers[(row[side], row["instruction_id"])] = row[f"response_{side}"]
    by_id = {p.task_id: p for p in problems}
    keys = [(e, p.task_id) for p in problems for e in experts]
    jobs = [(by_id[t], extract_code(answers[(e, t)] or "", by_id[t].entry_point) or "")
            for e, t in keys]
    checks = check_many(jobs, None, settings or Settings())
    passed: dict[str, dict[str, bool]] = {e: {} for e in experts}
    for (expert, task_id), check in zip(keys, checks, strict=True):
        passed[expert][task_id] = check.base_status == PASS
    return passed


def targets_of(config: ArenaConfig, pool: ExpertPool, battles: datasets.Dataset, mode: str
               ) -> dict[str, str]:
    """task_id -> the target's expert, with the judge and select phases' own builders under
    `judge.execution.mode = mode` (every instruction kept, cut answers allowed: every
    problem gets a target)."""
    data = config.model_dump()
    data["judge"]["execution"] = {**data["judge"].get(
        "execution", {}), "mode": mode}
    data["select"].update(keep_unjudged=True, allow_truncated_targets=True,
                          require_passing=False)
    moded = ArenaConfig.model_validate(data)
    votes = judge_phase.PHASE.build(PhaseInput(moded, battles, None, lambda: pool)).dataset
    chosen = select_phase.PHASE.build(PhaseInput(moded, votes, None, lambda: pool)).dataset
    return dict(zip(chosen["id"], chosen["winner"], strict=True))


def _bootstrap(values: np.ndarray, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(BOOTSTRAP_ROUNDS, len(values)))
    means = values[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def score_mode(check: ArenaCheck, mode: str, targets: dict[str, str], seed: int = 0
               ) -> ModeResult:
    """The figures of one mode's targets against the hidden-test results."""
    best = check.best_expert
    chosen = np.array([check.passed[targets[p]][p] for p in check.problems], dtype=float)
    baseline = np.array([check.passed[best][p] for p in check.problems], dtype=float)
    decisive = [p for p in check.problems
                if sum(check.passed[e][p] for e in check.experts) == 1]
    right = sum(check.passed[targets[p]][p] for p in decisive)
    return ModeResult(mode, targets, float(chosen.mean()), _bootstrap(chosen, seed),
                      float((chosen - baseline).mean()), _bootstrap(chosen - baseline, seed),
                      len(decisive), int(right))


def check_arena(config: ArenaConfig, count: int, modes: Sequence[str] = MODES, *,
                progress: bool | None = None, problems: Sequence[Problem] | None = None,
                settings: Settings | None = None) -> ArenaCheck:
    """Battles, votes and targets on `count` HumanEval problems in each mode, scored with the
    problems' own tests. Raises `EvaluationError` for an unknown mode or count."""
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise EvaluationError(f"--modes: choose from {', '.join(MODES)}, got {list(modes)}")
    if len(config.experts) < 3:
        raise EvaluationError("check-arena needs at least 3 experts: every battle needs an "
                              "uninvolved judge")
    chosen = pick_problems(count, problems)
    with ExpertPool.from_config(config, progress=progress) as pool:
        battles = battles_of(config, pool, chosen)
        targets = {mode: targets_of(config, pool, battles, mode) for mode in modes}
    check = ArenaCheck([p.task_id for p in chosen], list(config.expert_names),
                       hidden_results(chosen, battles, config.expert_names, settings))
    check.modes = [score_mode(check, mode, targets[mode]) for mode in modes]
    return check
