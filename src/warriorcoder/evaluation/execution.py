"""Run untrusted Python programs, one `python` subprocess each, with a timeout.

Each program runs in its own temporary folder with a bare environment (no tokens, HOME set to
that folder, stdin closed), its address space capped, and `__name__` other than `"__main__"`
so a model's `if __name__ == "__main__":` demo block does not run (EvalPlus's sanitizer drops
those blocks too). On timeout the whole process group is killed. This is isolation from
mistakes, not a sandbox against a hostile program: run evaluations on a machine you can lose.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ExecutionStatus = Literal["passed", "failed", "timed_out"]

DEFAULT_MEMORY_MB = 4096
_STDERR_TAIL = 2000

# Runs in the child: cap memory, then execute the program under a non-main module name.
_RUNNER = """
import runpy, sys
try:
    import resource
    limit = int(sys.argv[2]) * 1024 * 1024
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
except (ImportError, ValueError, OSError):
    pass
runpy.run_path(sys.argv[1], run_name="__humaneval__")
"""


@dataclass(frozen=True)
class ExecutionOutcome:
    """How one program ended: passed (exit 0), failed (with the end of its stderr) or timed out."""

    status: ExecutionStatus
    duration_s: float
    error: str | None = None


def _environment(home: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _last_error(stderr: str) -> str:
    """The end of stderr (the exception line of a traceback is its last non-empty line)."""
    text = stderr.strip()
    if not text:
        return "exited with a non-zero status and no error output"
    return text[-_STDERR_TAIL:]


def run_program(
    program: str, timeout_s: float = 10.0, memory_mb: int = DEFAULT_MEMORY_MB
) -> ExecutionOutcome:
    """Run `program` in a fresh `python` process; passed means it exited with status 0."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    with tempfile.TemporaryDirectory(prefix="warriorcoder-exec-") as folder:
        path = Path(folder) / "program.py"
        path.write_text(program, encoding="utf-8")
        stderr_path = Path(folder) / "stderr.txt"
        command = [sys.executable, "-I", "-c", _RUNNER, str(path), str(memory_mb)]
        started = time.perf_counter()
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                command,
                cwd=folder,
                env=_environment(folder),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return ExecutionOutcome(
                    "timed_out",
                    time.perf_counter() - started,
                    f"still running after {timeout_s:g} s; killed",
                )
        duration = time.perf_counter() - started
        if code == 0:
            return ExecutionOutcome("passed", duration)
        error = _last_error(stderr_path.read_text(encoding="utf-8", errors="replace"))
        if code < 0:
            error = f"killed by signal {-code}\n{error}"
        return ExecutionOutcome("failed", duration, error)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the program and anything it started (its own session and process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_programs(
    programs: Sequence[str],
    timeout_s: float = 10.0,
    workers: int | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> list[ExecutionOutcome]:
    """Run each program in its own subprocess, `workers` at a time; outcomes in input order."""
    if not programs:
        return []
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="warriorcoder-exec") as pool:
        return list(pool.map(lambda program: run_program(program, timeout_s, memory_mb), programs))
