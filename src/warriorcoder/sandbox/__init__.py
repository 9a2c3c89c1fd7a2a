"""Isolated execution of untrusted code, shared by judging and evaluation.

- `isolation.py`: the sandbox itself (bubblewrap, else unshare, else in-process guards),
  resource limits, `detect_isolation`; `cgroup.py`: each program's own `pids` cgroup.
- `_child.py`: the program that runs inside it (EvalPlus's ground truth and calls, tests).
- `asserts.py`, `channel.py`: asserts rewritten so the trusted parent decides them from values
  reported as plain data over a validated channel.
- `execution.py`: `run_tests` / `run_many` (one `Outcome` per (answer, test)), `run_calls`.
- `cache.py`: outcomes cached by content (`OutcomeCache`).
- `extract.py`, `sanitize.py`: the code of a model's reply, as the evaluation sanitises it.
"""

from warriorcoder.sandbox.cache import OutcomeCache, cache_key
from warriorcoder.sandbox.execution import CallsRun, run_calls, run_many, run_tests
from warriorcoder.sandbox.extract import extract_code, public_interface
from warriorcoder.sandbox.isolation import (
    ISOLATION_MEANING,
    ISOLATIONS,
    Isolation,
    Limits,
    detect_isolation,
)
from warriorcoder.sandbox.outcome import OUTCOME_MEANING, OUTCOMES, Outcome, OutcomeStatus
from warriorcoder.sandbox.sanitize import sanitize

__all__ = [
    "ISOLATIONS",
    "ISOLATION_MEANING",
    "OUTCOMES",
    "OUTCOME_MEANING",
    "CallsRun",
    "Isolation",
    "Limits",
    "Outcome",
    "OutcomeCache",
    "OutcomeStatus",
    "cache_key",
    "detect_isolation",
    "extract_code",
    "public_interface",
    "run_calls",
    "run_many",
    "run_tests",
    "sanitize",
]
