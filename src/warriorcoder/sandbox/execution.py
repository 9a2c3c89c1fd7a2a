"""Run an answer's code against tests in the sandbox; each (answer, test) gets one `Outcome`.

    outcomes = run_tests(code, ["assert add(1, 2) == 3"], Limits(test_time_s=4.0))

All tests of one answer run in one fresh sandboxed process (`_child.py`, mode `tests`): the
answer's code once, then each test in its own namespace under its own time limit. The parent
decides every assert from the values the process reports (`asserts.py`, `channel.py`); a process
that writes anything else on its report channel voids its whole run (every test `error`), and a
test the process never finished is `timeout` (killed at the limit) or `error` (it ended), the
tests after it rerun in a fresh process. `run_calls` is the same machinery for EvalPlus's
input/output tests (`evaluation.scoring`).
"""

from __future__ import annotations

import functools
import logging
import pickle
import secrets
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warriorcoder.sandbox.asserts import Rewritten, rewrite
from warriorcoder.sandbox.cache import OutcomeCache, cache_key
from warriorcoder.sandbox.channel import NotPlainData, Tampered, check_done, decode, read_messages
from warriorcoder.sandbox.isolation import (
    CHILD_SOURCE,
    Isolation,
    Limits,
    PipedRun,
    detect_isolation,
    private_folder,
    run_piped,
)
from warriorcoder.sandbox.outcome import Outcome

logger = logging.getLogger(__name__)

STARTUP_S = 3.0
"""Wall time allowed for starting the sandboxed interpreter, on top of the tests' limits."""
NO_CODE = Outcome("no_code", "the answer holds no Python code")
DEFAULT_LIMITS = Limits()


@functools.cache
def _child_source() -> bytes:
    return CHILD_SOURCE.read_bytes()


def execute(
    job: dict[str, Any], isolation: Isolation, timeout_s: float, processes: int
) -> tuple[list[dict[str, Any]] | str, PipedRun]:
    """Run `_child.py` on `job` in a fresh private folder: (messages, or why they are void; run)."""
    nonce = secrets.token_hex(16)
    with private_folder() as name:
        folder = Path(name)
        child = folder / "child.py"
        child.write_bytes(_child_source())
        job_path = folder / "job.pkl"
        job_path.write_bytes(pickle.dumps({**job, "nonce": nonce},
                                          protocol=pickle.HIGHEST_PROTOCOL))
        folder.chmod(0o755)
        argv = [sys.executable, "-I", str(child), str(job_path)]
        run = run_piped(isolation, folder, argv, timeout_s, processes=processes)
    if run.overflowed:
        return "the process wrote more than the report channel holds", run
    try:
        return read_messages(run.channel, nonce), run
    except Tampered as error:
        return f"the report channel was tampered with ({error})", run


def _ended_early(run: PipedRun) -> str:
    tail = run.output_tail.strip().splitlines()[-1:] or [""]
    return f"the process ended early (exit code {run.returncode}) {tail[0]}".strip()


def _decide(rewritten: Rewritten, values: list[dict[str, Any]], end: dict[str, Any]) -> Outcome:
    """One finished test's outcome from its reported values and its end message."""
    seen: set[int] = set()
    weak = False
    for message in values:
        check = rewritten.checks[message["a"]]
        weak = weak or check.weak
        seen.add(message["a"])
        reported = message["v"]
        rejected = next((item["x"] for item in reported if "x" in item), None)
        if rejected is not None:
            return Outcome("fail", f"assert {check.source}: {rejected}", weak)
        try:
            held, why = check.decide([decode(item["v"]) for item in reported])
        except NotPlainData as error:
            return Outcome("error", f"the report channel held a forged value ({error})", weak)
        except Exception as error:  # noqa: BLE001 - Python's own assert would have raised it
            return Outcome("error", f"assert {check.source}: {type(error).__name__}: {error}",
                           weak)
        if not held:
            return Outcome("fail", why, weak)
    status, detail = end["s"], end["d"]
    if status == "timeout":
        return Outcome("timeout", "the test ran past its time limit", weak)
    if status == "assert":
        return Outcome("fail", detail, weak)
    if status == "error":
        return Outcome("error", detail, weak)
    if not seen:
        return Outcome("error", "the test ran no assert", weak)
    if not rewritten.required <= seen:
        return Outcome("error", "the test ended without running all of its asserts", weak)
    return Outcome("pass", "", weak)


def _valid_value(message: dict[str, Any], rewritten: Rewritten) -> bool:
    check_id, values = message.get("a"), message.get("v")
    if type(check_id) is not int or check_id not in rewritten.checks or type(values) is not list:
        return False
    if len(values) != rewritten.checks[check_id].sent:
        return False
    return all(type(v) is dict and len(v) == 1 and ("v" in v or type(v.get("x")) is str)
               for v in values)


def _run_batch(
    code: str, tests: dict[int, Rewritten], order: list[int], limits: Limits, isolation: Isolation
) -> tuple[dict[int, Outcome], list[int]]:
    """(outcomes of the tests this process settled, tests to run again in a fresh process)."""
    job = {
        "mode": "tests",
        "code": code,
        "tests": {i: tests[i].source for i in order},
        "run": order,
        "test_time_s": limits.test_time_s,
        "limits": limits.as_dict(),
    }
    timeout = STARTUP_S + limits.test_time_s * (len(order) + 1)
    messages, run = execute(job, isolation, timeout, limits.processes)
    if isinstance(messages, str):
        return {i: Outcome("error", messages) for i in order}, []
    if not messages or messages[0].get("k") != "code":
        if run.timed_out:
            why = Outcome("timeout", "the answer's code did not finish loading in time")
        else:
            why = Outcome("error", f"while loading the answer's code: {_ended_early(run)}")
        return {i: why for i in order}, []
    if messages[0].get("ok") is not True:
        detail = str(messages[0].get("d", ""))
        why = (Outcome("timeout", "the answer's code did not finish loading in time")
               if detail == "timeout" else Outcome("error", f"the answer's code raised {detail}"))
        return {i: why for i in order}, []
    done = check_done(messages)
    body = messages[1:-1] if done else messages[1:]
    settled: dict[int, Outcome] = {}
    position, current, values = 0, None, []
    void = Outcome("error", "the report channel was tampered with (out-of-order messages)")
    for message in body:
        kind = message["k"]
        if kind == "begin" and current is None and position < len(order) \
                and message.get("t") == order[position]:
            current, values = order[position], []
        elif kind == "v" and current is not None and message.get("t") == current \
                and _valid_value(message, tests[current]):
            values.append(message)
        elif kind == "end" and current is not None and message.get("t") == current \
                and message.get("s") in ("ok", "assert", "error", "timeout") \
                and type(message.get("d")) is str:
            settled[current] = _decide(tests[current], values, message)
            current, position = None, position + 1
        else:
            return {i: void for i in order}, []
    if done and position == len(order):
        return settled, []
    if done:
        return {i: void for i in order}, []
    if current is not None:
        unfinished = _decide(tests[current], values, {"s": "ok", "d": ""})
        if unfinished.status == "fail":
            settled[current] = unfinished  # a failed assert decides, as it would have stopped it
        elif run.timed_out:
            settled[current] = Outcome("timeout", "the test ran past its time limit")
        else:
            settled[current] = Outcome("error", _ended_early(run))
        position += 1
    elif position < len(order):  # ended between tests: the next one is charged, so runs end
        stuck = order[position]
        settled[stuck] = (Outcome("timeout", "the test ran past its time limit") if run.timed_out
                          else Outcome("error", _ended_early(run)))
        position += 1
    return settled, order[position:]


def run_tests(
    code: str | None,
    tests: Sequence[str],
    limits: Limits = DEFAULT_LIMITS,
    isolation: Isolation | None = None,
    cache: OutcomeCache | None = None,
) -> list[Outcome]:
    """One `Outcome` per test of the answer `code` (None or blank: every test `no_code`)."""
    if code is None or not code.strip():
        return [NO_CODE for _ in tests]
    isolation = isolation or detect_isolation()
    keys = [cache_key(code, test, limits, isolation) for test in tests]
    known = cache.get_many(keys) if cache is not None else {}
    outcomes: dict[int, Outcome] = {i: known[k] for i, k in enumerate(keys) if k in known}
    runnable: dict[int, Rewritten] = {}
    for i, test in enumerate(tests):
        if i in outcomes:
            continue
        try:
            runnable[i] = rewrite(test)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
            outcomes[i] = Outcome("error", f"the test does not parse: {error}")
    order = sorted(runnable)
    fresh: dict[int, Outcome] = {}
    while order:
        settled, order = _run_batch(code, runnable, order, limits, isolation)
        fresh.update(settled)
    if cache is not None:
        cache.put_many({keys[i]: o for i, o in fresh.items()})
    outcomes.update(fresh)
    return [outcomes[i] for i in range(len(tests))]


def run_many(
    jobs: Sequence[tuple[str | None, Sequence[str]]],
    limits: Limits = DEFAULT_LIMITS,
    isolation: Isolation | None = None,
    cache: OutcomeCache | None = None,
    workers: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[list[Outcome]]:
    """`run_tests` for each (code, tests), `workers` sandboxes at a time, results in order."""
    import os

    isolation = isolation or detect_isolation()

    def one(index: int) -> list[Outcome]:
        code, tests = jobs[index]
        outcomes = run_tests(code, tests, limits, isolation, cache)
        if on_done:
            on_done(index)
        return outcomes

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(len(jobs))))


@dataclass
class CallsRun:
    """What a `calls` run reported: the candidate's load, then each input's output or error."""

    loaded: bool
    load_error: str = ""
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    """Per input, in order: ("value", object), ("rejected", why not plain data),
    ("error", detail) or ("timeout", "")."""
    void: str = ""
    """Why the run's report cannot be trusted ("" when it can)."""
    timed_out: bool = False
    output_tail: str = ""
    duration_s: float = 0.0


def run_calls(
    code: str,
    entry_point: str,
    inputs: list[Any],
    time_limits: list[float],
    limits: Limits,
    isolation: Isolation,
    timeout_s: float,
) -> CallsRun:
    """Call `entry_point` of `code` on each input in the sandbox; outputs come back as data."""
    job = {"mode": "calls", "code": code, "entry_point": entry_point, "inputs": inputs,
           "time_limits": time_limits, "limits": limits.as_dict()}
    messages, run = execute(job, isolation, timeout_s, limits.processes)
    result = CallsRun(False, timed_out=run.timed_out, output_tail=run.output_tail,
                      duration_s=run.duration_s)
    if isinstance(messages, str):
        result.void = messages
        return result
    if not messages or messages[0].get("k") != "code":
        return result
    result.loaded = messages[0].get("ok") is True
    result.load_error = str(messages[0].get("d", ""))
    done = check_done(messages)
    for position, message in enumerate(messages[1:-1] if done else messages[1:]):
        if message.get("k") != "out" or message.get("i") != position or position >= len(inputs):
            result.void = "the report channel was tampered with (out-of-order messages)"
            return result
        if "v" in message:
            try:
                result.outputs.append(("value", decode(message["v"])))
            except NotPlainData as error:
                result.void = f"the report channel held a forged value ({error})"
                return result
        elif type(message.get("x")) is str:
            result.outputs.append(("rejected", message["x"]))
        elif message.get("e") == "timeout":
            result.outputs.append(("timeout", ""))
        else:
            result.outputs.append(("error", str(message.get("e", ""))))
    if done and result.loaded and len(result.outputs) != len(inputs):
        result.void = "the report channel was tampered with (wrong message count)"
    return result
