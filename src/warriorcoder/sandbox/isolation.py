"""Run one untrusted program with no network, a private folder as its only writable place,
the rest of the file system read-only (the home folders and the Hub token hidden), limits on
processes, memory, CPU time and output size, and a clean environment.

Isolation, best first (`detect_isolation()` measures which works here):

- `bubblewrap`: `bwrap` (Debian package `bubblewrap`): new user, pid, network, ipc, uts and
  cgroup namespaces; `/` bound read-only; `/home`, `/root`, `/var/tmp`, `/run`, `$HOME`,
  `$HF_HOME` and `$XDG_CACHE_HOME` replaced by empty read-only folders; the interpreter and its
  site-packages bound back read-only; `/tmp` a private 64 MiB tmpfs holding the program's
  folder, bound read-write as `/tmp/sandbox`.
- `unshare`: util-linux `unshare` (user, network and pid namespaces): no network and no
  process outside is visible, but the file system is protected only by the in-process guards.
- `guards`: EvalPlus's `reliability_guard` and the resource limits alone (no OS isolation).

Every mode also applies the resource limits and EvalPlus's `reliability_guard` in the child
(`_child.py`), kills the whole process group (and with namespaces the whole pid namespace) at
the time limit, and gives the child an environment with nothing from the caller's.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from warriorcoder.sandbox.cgroup import PidsGroup, kill_group_members

logger = logging.getLogger(__name__)

Isolation = Literal["bubblewrap", "unshare", "guards"]
ISOLATIONS: tuple[Isolation, ...] = ("bubblewrap", "unshare", "guards")
ISOLATION_MEANING: dict[str, str] = {
    "bubblewrap": "bubblewrap: no network, private pid/user namespaces, file system read-only "
    "except a private temporary folder, home folders and Hub token hidden, resource limits, "
    "clean environment, EvalPlus reliability_guard",
    "unshare": "unshare: no network, private pid/user namespaces, resource limits, clean "
    "environment, EvalPlus reliability_guard (file system protected by the guard only)",
    "guards": "in-process guards only (EvalPlus reliability_guard + resource limits, clean "
    "environment); no OS isolation was available",
}

CHILD_SOURCE = Path(__file__).with_name("_child.py")
SANDBOX_DIR = "/tmp/sandbox"
"""Where the private folder appears inside bubblewrap (on a small private tmpfs `/tmp`)."""
_TMPFS_BYTES = 64 * 1024**2
_OUTPUT_TAIL = 2000


@dataclass(frozen=True)
class Limits:
    """Per-program limits (EvalPlus: 4 GiB of memory)."""

    memory_bytes: int = 4 * 1024**3
    processes: int = 64
    cpu_s: int = 120
    file_bytes: int = 16 * 1024**2
    test_time_s: float = 4.0
    """Wall time of one test of `run_tests` (and of loading the answer's code)."""

    def as_dict(self) -> dict[str, int]:
        return {
            "memory_bytes": self.memory_bytes,
            "processes": self.processes,
            "cpu_s": self.cpu_s,
            "file_bytes": self.file_bytes,
        }


@dataclass(frozen=True)
class ChildRun:
    """How a sandboxed child ended; `result` is its JSON result text ("" if it wrote none)."""

    returncode: int | None
    timed_out: bool
    duration_s: float
    result: str
    output_tail: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def _clean_environment(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


@functools.cache
def _python_roots() -> list[str]:
    """Folders the interpreter needs (prefixes, stdlib, site-packages), outermost first."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(sysconfig.get_paths().values())
    with contextlib.suppress(AttributeError):
        paths.update(site.getsitepackages())
    paths.add(str(Path(sys.executable).resolve().parent))
    paths.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    import numpy

    paths.add(str(Path(numpy.__file__).resolve().parent.parent))
    existing = sorted({str(Path(p).resolve()) for p in paths if p and Path(p).exists()})
    kept: list[str] = []
    for path in existing:  # drop folders inside one already kept
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _hidden_folders() -> list[str]:
    hidden = ["/home", "/root", "/tmp", "/var/tmp", "/run", "/mnt", "/media"]
    for variable in ("HOME", "HF_HOME", "XDG_CACHE_HOME", "HF_TOKEN_PATH"):
        value = os.environ.get(variable)
        if value and Path(value).is_absolute():
            path = Path(value)
            path = path if path.is_dir() else path.parent
            hidden.append(str(path.resolve()))
    hidden.append(str(Path.home().resolve()))
    out: list[str] = []
    for path in hidden:
        if path not in out and path != "/" and Path(path).is_dir():
            out.append(path)
    return out


def bubblewrap_command(folder: Path) -> list[str]:
    """The `bwrap` argument list that isolates a child whose private folder is `folder`."""
    command = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    hidden = [path for path in _hidden_folders() if path != "/tmp"]
    command += ["--size", str(_TMPFS_BYTES), "--tmpfs", "/tmp"]
    for path in hidden:
        command += ["--tmpfs", path]
    for path in list(_python_roots()):
        command += ["--ro-bind", path, path]
    command += ["--bind", str(folder), SANDBOX_DIR]
    for path in hidden:  # last: the binds above need mount points inside them
        command += ["--remount-ro", path]
    command += ["--chdir", SANDBOX_DIR, "--clearenv"]
    for key, value in _clean_environment(SANDBOX_DIR).items():
        command += ["--setenv", key, value]
    return command


def _wrap(isolation: Isolation, folder: Path, argv: list[str]) -> tuple[list[str], str]:
    """(command, the folder path the child sees)."""
    if isolation == "bubblewrap":
        inner = [a.replace(str(folder), SANDBOX_DIR) for a in argv]
        return [*bubblewrap_command(folder), "--", *inner], SANDBOX_DIR
    if isolation == "unshare":
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", *argv], str(
            folder
        )
    return argv, str(folder)


def _wait_then_reap(process: subprocess.Popen[bytes], group: PidsGroup, timeout_s: float
                    ) -> tuple[bool, int | None]:
    """(timed out, exit code) of `process`; then kills its whole process group and cgroup: a
    program that forked must not outlive its run."""
    try:
        return False, process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return True, None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kill_group_members(group)
        group.close()


def run_child(
    isolation: Isolation,
    folder: Path,
    argv: list[str],
    timeout_s: float,
    result_name: str = "result.json",
    processes: int = 64,
) -> ChildRun:
    """Run `argv` (paths inside `folder`) isolated; kill it and its descendants at `timeout_s`."""
    command, inside = _wrap(isolation, folder, argv)
    output_path = folder / "output.txt"
    group = PidsGroup(processes)
    started = time.perf_counter()
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=_clean_environment(inside),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            preexec_fn=group.join if group.fd is not None else None,  # noqa: PLW1509
        )
        timed_out, code = _wait_then_reap(process, group, timeout_s)
    duration = time.perf_counter() - started
    result_path = folder / result_name
    result = ""
    if result_path.is_file():
        with contextlib.suppress(OSError):
            result = result_path.read_text(encoding="utf-8", errors="replace")[:10_000_000]
    tail = ""
    with contextlib.suppress(OSError):
        size = output_path.stat().st_size
        with output_path.open("rb") as handle:
            handle.seek(max(0, size - _OUTPUT_TAIL))
            tail = handle.read().decode("utf-8", errors="replace")
    return ChildRun(code, timed_out, duration, result, tail)


@dataclass(frozen=True)
class PipedRun:
    """How a sandboxed child ended; `channel` is what it wrote on its standard output."""

    returncode: int | None
    timed_out: bool
    duration_s: float
    channel: bytes
    overflowed: bool
    """The child wrote more than the channel's cap (the rest was dropped)."""
    output_tail: str = ""


CHANNEL_CAP = 256 * 1024**2


def run_piped(
    isolation: Isolation,
    folder: Path,
    argv: list[str],
    timeout_s: float,
    processes: int = 64,
    cap: int = CHANNEL_CAP,
) -> PipedRun:
    """`run_child`, but the child's standard output is a pipe read here (the report channel);
    its standard error goes to `output.txt` in `folder`."""
    command, inside = _wrap(isolation, folder, argv)
    output_path = folder / "output.txt"
    group = PidsGroup(processes)
    chunks: list[bytes] = []
    overflowed = False
    started = time.perf_counter()
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=_clean_environment(inside),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=output,
            start_new_session=True,
            preexec_fn=group.join if group.fd is not None else None,  # noqa: PLW1509
        )
        assert process.stdout is not None
        stream = process.stdout

        def read() -> None:
            nonlocal overflowed
            size = 0
            while chunk := stream.read1(1 << 16):
                if size + len(chunk) > cap:
                    overflowed = True
                    continue  # keep draining so the child never blocks on a full pipe
                chunks.append(chunk)
                size += len(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        timed_out, code = _wait_then_reap(process, group, timeout_s)
        reader.join(timeout=5)
        stream.close()
    duration = time.perf_counter() - started
    tail = ""
    with contextlib.suppress(OSError):
        size = output_path.stat().st_size
        with output_path.open("rb") as handle:
            handle.seek(max(0, size - _OUTPUT_TAIL))
            tail = handle.read().decode("utf-8", errors="replace")
    return PipedRun(code, timed_out, duration, b"".join(chunks), overflowed, tail)


def private_folder() -> tempfile.TemporaryDirectory[str]:
    """A fresh temporary folder for one program (removed afterwards, whatever it holds)."""
    return tempfile.TemporaryDirectory(prefix="warriorcoder-sandbox-", ignore_cleanup_errors=True)


def _probe(isolation: Isolation) -> bool:
    with private_folder() as name:
        folder = Path(name)
        probe = folder / "probe.py"
        probe.write_text(
            "import socket, pathlib\n"
            "pathlib.Path('ok.txt').write_text('ok')\n"
            "s = socket.socket()\n"
            "s.settimeout(1)\n"
            "try:\n    s.connect(('1.1.1.1', 53))\nexcept OSError:\n    pass\n"
            "else:\n    raise SystemExit('network reachable')\n",
            encoding="utf-8",
        )
        try:
            run = run_child(isolation, folder, [sys.executable, "-I", str(probe)], 20.0, "ok.txt")
        except OSError:
            return False
        return run.returncode == 0 and run.result == "ok"


@functools.cache
def detect_isolation() -> Isolation:
    """The strongest isolation that works on this machine (measured once per process)."""
    forced = os.environ.get("WARRIORCODER_SANDBOX")
    if forced:
        if forced not in ISOLATIONS:
            from warriorcoder.errors import EvaluationError

            raise EvaluationError(
                f"WARRIORCODER_SANDBOX={forced!r} is not one of {', '.join(ISOLATIONS)}"
            )
        return forced  # type: ignore[return-value]
    if shutil.which("bwrap") and _probe("bubblewrap"):
        return "bubblewrap"
    if shutil.which("unshare") and _probe("unshare"):
        logger.warning(
            "bubblewrap is not available (apt-get install bubblewrap); generated code runs "
            "with unshare (no network) and in-process guards for the file system"
        )
        return "unshare"
    logger.warning(
        "neither bubblewrap nor unshare works here; generated code runs with in-process guards "
        "only. Install bubblewrap (apt-get install bubblewrap) for a real sandbox."
    )
    return "guards"
