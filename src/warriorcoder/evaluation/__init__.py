"""Evaluation of a trained checkpoint (or any expert): HumanEval pass@1 in instruct mode.

`evaluate(config, target)` is the engine of `warriorcoder evaluate`; see `humaneval.py`."""

from warriorcoder.evaluation.execution import ExecutionOutcome, run_program, run_programs
from warriorcoder.evaluation.humaneval import (
    INSTRUCTION_PREFIX,
    Problem,
    build_solution,
    evaluate,
    extract_code,
    instruction_prompt,
    load_problems,
)
from warriorcoder.evaluation.report import STATUSES, EvalReport, ProblemResult, Status

__all__ = [
    "INSTRUCTION_PREFIX",
    "STATUSES",
    "EvalReport",
    "ExecutionOutcome",
    "Problem",
    "ProblemResult",
    "Status",
    "build_solution",
    "evaluate",
    "extract_code",
    "instruction_prompt",
    "load_problems",
    "run_program",
    "run_programs",
]
