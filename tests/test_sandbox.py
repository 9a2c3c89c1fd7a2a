"""Hostile programs in the evaluation sandbox: each one fails and changes nothing outside.

Each program does its hostile act and then defines HumanEval/0's canonical solution, so it
passes only if the act is NOT contained (a readable token, a working socket, a write that
lands...). The programs run as HumanEval samples through `check_solution`, under the best
isolation this machine offers (bubblewrap on these machines; `apt-get install bubblewrap`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from warriorcoder.evaluation import Settings, check_solution, detect_isolation, load_human_eval
from warriorcoder.sandbox.isolation import ISOLATION_MEANING, _probe

PROBLEM = load_human_eval().problems[0]
CANONICAL = PROBLEM.prompt + PROBLEM.canonical_solution
FAST = Settings(check_timeout_s=5.0)

pytestmark = pytest.mark.skipif(
    detect_isolation() != "bubblewrap",
    reason="the file-system checks need bubblewrap (apt-get install bubblewrap)",
)


def _run(program: str, settings: Settings = FAST):
    return check_solution(PROBLEM, program + "\n" + CANONICAL, None, settings)


def _sandbox_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if "/tmp/sandbox/child.py" in cmdline or "warriorcoder-sandbox-" in cmdline:
            found.append(process)
    return found


def test_the_canonical_solution_passes_in_the_sandbox() -> None:
    assert _run("").base_status == "pass", "the control: without a hostile act it passes"


@pytest.mark.parametrize("fork", ["os.fork", "posix.fork"])
def test_fork_bomb_fails_and_leaves_no_process(fork: str) -> None:
    before = len(psutil.pids())
    outcome = _run(f"import os, posix\nwhile True:\n    {fork}()\n")
    assert outcome.base_status != "pass"
    time.sleep(0.3)
    assert _sandbox_processes() == []
    assert len(psutil.pids()) < before + 20


def test_infinite_loop_is_killed_at_the_time_limit() -> None:
    started = time.perf_counter()
    outcome = _run("while True:\n    pass\n", Settings(check_timeout_s=2.0))
    assert outcome.base_status == "timeout"
    assert time.perf_counter() - started < 6
    assert _sandbox_processes() == []


def test_100_gb_allocation_fails() -> None:
    outcome = _run("hog = bytearray(100 * 1024 ** 3)\n")
    assert outcome.base_status == "fail"
    assert "MemoryError" in (outcome.error or "")


@pytest.mark.parametrize("isolation", ["bubblewrap", "unshare"])
def test_no_connection_reaches_a_listening_local_port(isolation: str) -> None:
    if not _probe(isolation):
        pytest.skip(f"{isolation} does not work here")
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
        program = (
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')\n"
        )
        outcome = _run(program, Settings(check_timeout_s=8.0, isolation=isolation))
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join()
        server.close()
    assert outcome.base_status == "fail"
    assert accepted == [], "a connection arrived from the sandbox"


def test_writes_outside_the_private_folder_do_not_land(tmp_path: Path) -> None:
    in_tmp = tmp_path / "pwned.txt"
    in_repo = Path(__file__).parent / f"pwned-{os.getpid()}.txt"
    try:
        for target in (in_tmp, in_repo):
            outcome = _run(f"import io\nio.open({str(target)!r}, 'w').write('pwned')\n")
            assert outcome.base_status == "fail"
            assert not target.exists()
    finally:
        in_repo.unlink(missing_ok=True)


def test_the_hub_token_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    token = home / ".cache" / "huggingface" / "token"
    token.parent.mkdir(parents=True)
    token.write_text("hf_fake_secret_for_the_test")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_env_secret")
    program = (
        "import io, os\n"
        f"secret = io.open({str(token)!r}).read()\n"
        "assert 'HF_TOKEN' not in os.environ\n"
    )
    outcome = _run(program)
    assert outcome.base_status == "fail"
    assert "hf_fake" not in (outcome.error or "")
    env_program = "import os\nassert os.environ.get('HF_TOKEN') is None\n"
    assert _run(env_program).base_status == "pass", "the environment is a clean one"


@pytest.mark.parametrize("call", ["os.system", "posix.system"])
def test_rm_rf_of_a_planted_folder_removes_nothing(tmp_path: Path, call: str) -> None:
    planted = Path(__file__).parent / f"planted-{os.getpid()}"
    planted.mkdir()
    (planted / "keep.txt").write_text("keep")
    try:
        for folder in (planted, tmp_path):
            (folder / "keep.txt").write_text("keep")
            program = (
                f"import os, posix\nassert os.path.isdir({str(folder)!r})\n"
                f"{call}('rm -rf {folder}')\nassert not os.path.exists({str(folder)!r})\n"
            )
            outcome = _run(program)
            assert outcome.base_status == "fail"
            assert (folder / "keep.txt").read_text() == "keep"
    finally:
        for child in planted.iterdir():
            child.unlink()
        planted.rmdir()


def test_isolation_is_described() -> None:
    assert "no network" in ISOLATION_MEANING[detect_isolation()]
