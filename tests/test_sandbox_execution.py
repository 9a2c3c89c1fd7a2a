"""`sandbox.run_tests`: one outcome per (answer, test); hostile answers and hostile tests are
contained and recorded as their outcome; the outcome cache makes a killed run resume without
re-running finished pairs."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from warriorcoder.sandbox import (
    Limits,
    Outcome,
    OutcomeCache,
    detect_isolation,
    extract_code,
    public_interface,
    run_many,
    run_tests,
)

ADD = "def add(a, b):\n    return a + b\n"
FAST = Limits(test_time_s=2.0)
needs_bubblewrap = pytest.mark.skipif(
    detect_isolation() != "bubblewrap",
    reason="the file-system checks need bubblewrap (apt-get install bubblewrap)",
)


def test_each_test_gets_its_outcome() -> None:
    tests = [
        "assert add(1, 2) == 3",
        "assert add(1, 2) == 4",
        "assert add('a', 1) == 'a1'",
        "while True:\n    pass",
        "assert add(2, 2) == add(1, 3)",
        "x = add(1, 1)",
        "assert add(1,",
    ]
    statuses = [o.status for o in run_tests(ADD, tests, FAST)]
    assert statuses == ["pass", "fail", "error", "timeout", "pass", "error", "error"]
    assert [o.status for o in run_tests(None, tests[:2], FAST)] == ["no_code", "no_code"]
    assert [o.status for o in run_tests("  \n", tests[:1], FAST)] == ["no_code"]


def test_strong_and_weak_asserts_are_told_apart() -> None:
    strong, weak = run_tests(ADD, ["assert add(1, 2) == 3", "assert add(1, 2) == add(2, 1)"],
                             FAST)
    assert (strong.status, strong.weak) == ("pass", False)
    assert (weak.status, weak.weak) == ("pass", True)


def test_a_stuck_test_does_not_take_the_others_with_it() -> None:
    blocking = "import time\nassert add(time.sleep(30) or 1, 1) == 2"
    swallowing = (
        "def spin():\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except BaseException:\n            pass\n"
        "spin()"
    )
    started = time.perf_counter()
    outcomes = run_tests(ADD, ["assert add(1, 1) == 2", blocking, swallowing,
                               "assert add(2, 2) == 4"], Limits(test_time_s=1.0))
    assert [o.status for o in outcomes] == ["pass", "timeout", "timeout", "pass"]
    assert time.perf_counter() - started < 20


def test_the_answers_top_level_error_is_every_tests_error() -> None:
    outcomes = run_tests("def add(a, b):\n    return a + b\nraise ValueError('boom')\n",
                         ["assert add(1, 1) == 2"] * 2, FAST)
    assert [o.status for o in outcomes] == ["error", "error"]
    assert "ValueError: boom" in outcomes[0].detail


def test_extract_code_takes_fenced_python_and_sanitises_it() -> None:
    reply = (
        "Here you go:\n```python\nimport math\n\ndef area(r):\n    return math.pi * r * r\n\n"
        "print(area(2))\n```\nAnd a shell line:\n```bash\nrm -rf /\n```\n"
    )
    code = extract_code(reply)
    assert code is not None and "def area" in code and "print(" not in code
    assert "rm -rf" not in code
    assert extract_code("I cannot help with that.") is None
    assert extract_code("") is None
    assert public_interface(code) == ["def area(r)"]


# -- hostile answers and hostile tests -------------------------------------------------------

FORK_BOMB = "import posix\nwhile True:\n    posix.fork()\n"
LOOP = "while True:\n    pass\n"


def _sandbox_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if "/tmp/sandbox/child.py" in cmdline or "warriorcoder-sandbox-" in cmdline:
            found.append(process)
    return found


def _hostile(snippet: str, where: str, limits: Limits = FAST) -> Outcome:
    """`snippet` as the answer's top level, or as the test (after a correct answer)."""
    if where == "answer":
        (outcome,) = run_tests(ADD + snippet, ["assert add(1, 1) == 2"], limits)
    else:
        (outcome,) = run_tests(ADD, [snippet + "\nassert add(1, 1) == 2"], limits)
    return outcome


@pytest.mark.parametrize("where", ["answer", "test"])
def test_fork_bomb_is_contained(where: str) -> None:
    before = len(psutil.pids())
    outcome = _hostile(FORK_BOMB, where)
    assert outcome.status in ("error", "timeout")
    time.sleep(0.3)
    assert _sandbox_processes() == []
    assert len(psutil.pids()) < before + 20


@pytest.mark.parametrize("where", ["answer", "test"])
def test_infinite_loop_is_a_timeout(where: str) -> None:
    started = time.perf_counter()
    assert _hostile(LOOP, where, Limits(test_time_s=1.0)).status == "timeout"
    assert time.perf_counter() - started < 10
    assert _sandbox_processes() == []


@pytest.mark.parametrize("where", ["answer", "test"])
def test_no_connection_leaves_the_sandbox(where: str) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        outcome = _hostile(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"
            ".sendall(b'leak')\n", where)
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join()
        server.close()
    assert outcome.status == "error"
    assert accepted == []


@needs_bubblewrap
@pytest.mark.parametrize("where", ["answer", "test"])
def test_writes_outside_do_not_land(tmp_path: Path, where: str) -> None:
    target = tmp_path / "pwned.txt"
    outcome = _hostile(f"import io\nio.open({str(target)!r}, 'w').write('pwned')\n", where)
    assert outcome.status == "error"
    assert not target.exists()


@needs_bubblewrap
@pytest.mark.parametrize("where", ["answer", "test"])
def test_the_token_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  where: str) -> None:
    home = tmp_path / "home"
    token = home / ".cache" / "huggingface" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("hf_fake_secret_for_the_test")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_env_secret")
    outcome = _hostile(f"import io, os\nsecret = io.open({str(token)!r}).read()\n"
                       "assert 'HF_TOKEN' not in os.environ\n", where)
    assert outcome.status == "error"
    assert "hf_fake" not in outcome.detail
    (env,) = run_tests(ADD, ["import os\nassert os.environ.get('HF_TOKEN') is None"], FAST)
    assert env.status == "pass"


# -- the outcome cache -------------------------------------------------------------------------

def _jobs(count: int) -> list[tuple[str, list[str]]]:
    """Answers that take ~0.3 s to load, each with three tests (one failing)."""
    answer = ("import time\ntime.sleep(0.3)\n"
              "def add(a, b):  # answer {i}\n    return a + b + {bias}\n")
    tests = ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(2, 2) == 5"]
    return [(answer.format(i=i, bias=i % 2), tests) for i in range(count)]


def test_two_runs_give_the_same_outcomes_and_a_rerun_executes_nothing(tmp_path: Path) -> None:
    jobs = _jobs(3)
    fresh = run_many(jobs, FAST, workers=2)
    with OutcomeCache(tmp_path / "outcomes.sqlite") as cache:
        first = run_many(jobs, FAST, cache=cache, workers=2)
        assert cache.executed == 9
    with OutcomeCache(tmp_path / "outcomes.sqlite") as cache:
        again = run_many(jobs, FAST, cache=cache, workers=2)
        assert cache.executed == 0
    assert fresh == first == again
    assert [o.status for o in first[0]] == ["pass", "pass", "fail"]
    assert [o.status for o in first[1]] == ["fail", "fail", "pass"]


def test_a_killed_run_resumes_without_rerunning_finished_pairs(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.sqlite"
    jobs = _jobs(8)
    script = textwrap.dedent(f"""
        from warriorcoder.sandbox import Limits, OutcomeCache, run_many
        jobs = {jobs!r}
        with OutcomeCache({str(path)!r}) as cache:
            run_many(jobs, Limits(test_time_s=2.0), cache=cache, workers=1)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and process.poll() is None:
            if path.exists():
                with sqlite3.connect(path) as db:
                    try:
                        done = db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
                    except sqlite3.OperationalError:
                        done = 0
                if done >= 6:  # two answers finished
                    break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    with OutcomeCache(path) as cache:
        finished = len(cache)
        assert 6 <= finished < 24, "the kill came mid-run"
        resumed = run_many(jobs, FAST, cache=cache, workers=2)
        assert cache.executed == 24 - finished
    assert resumed == run_many(jobs, FAST, workers=2)
