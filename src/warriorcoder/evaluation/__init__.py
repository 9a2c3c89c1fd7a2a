"""Evaluation: HumanEval(+) and MBPP(+) pass@k as EvalPlus scores them, in a sandbox.

`evaluate(config, target, EvalOptions(benchmarks=[...]))` is the engine of
`warriorcoder evaluate` (`engine.py`); problems come from `benchmarks.py`, prompts from
`prompts.py`, sanitising from `warriorcoder.sandbox`, programs run in that sandbox and are
scored by `scoring.py`; the `evals` dataset and its card are in `card.py`.
"""

from warriorcoder.evaluation.benchmarks import (
    BENCHMARKS,
    Problem,
    ProblemSet,
    load_evalplus,
    load_human_eval,
    resolve,
)
from warriorcoder.evaluation.card import model_card_section, publish_report, render_card
from warriorcoder.evaluation.engine import EvalOptions, evaluate, resolve_target
from warriorcoder.evaluation.prompts import INSTRUCTION_PREFIX, RESPONSE_PREFIX
from warriorcoder.evaluation.report import STATUSES, EvalReport, SampleResult, Status
from warriorcoder.evaluation.samples import read_samples
from warriorcoder.evaluation.scoring import Settings, check_solution, estimate_pass_at_k
from warriorcoder.sandbox import ISOLATIONS, Limits, detect_isolation, sanitize

__all__ = [
    "BENCHMARKS",
    "INSTRUCTION_PREFIX",
    "ISOLATIONS",
    "RESPONSE_PREFIX",
    "STATUSES",
    "EvalOptions",
    "EvalReport",
    "Limits",
    "Problem",
    "ProblemSet",
    "SampleResult",
    "Settings",
    "Status",
    "check_solution",
    "detect_isolation",
    "estimate_pass_at_k",
    "evaluate",
    "load_evalplus",
    "load_human_eval",
    "model_card_section",
    "publish_report",
    "read_samples",
    "render_card",
    "resolve",
    "resolve_target",
    "sanitize",
]
