"""A program's own cgroup with `pids.max`, where a `pids` controller is writable: the process
limit that also binds root (`isolation.py` puts every program in one when it can)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)


@functools.cache
def pids_cgroup_root() -> Path | None:
    """A cgroup `pids` hierarchy this process may create groups in (None when there is none).

    `RLIMIT_NPROC` does not bind root (nor, through user namespaces, a program started by
    root), so where a `pids` controller is writable each program also gets its own cgroup with
    `pids.max` set to the process limit."""
    candidates = [Path("/sys/fs/cgroup/pids")]
    unified = Path("/sys/fs/cgroup")
    controllers = unified / "cgroup.controllers"
    if controllers.is_file() and "pids" in controllers.read_text().split():
        candidates.append(unified)
    for root in candidates:
        probe = root / f"warriorcoder-probe-{os.getpid()}"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError:
            continue
        return root
    return None


class PidsGroup:
    """One program's cgroup with `pids.max`; the child joins it before it execs."""

    _count = 0
    _lock = threading.Lock()

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        self.fd: int | None = None
        root = pids_cgroup_root()
        if root is None:
            return
        with PidsGroup._lock:
            PidsGroup._count += 1
            name = f"warriorcoder-{os.getpid()}-{PidsGroup._count}"
        try:
            path = root / name
            path.mkdir()
            (path / "pids.max").write_text(str(limit))
            self.fd = os.open(path / "cgroup.procs", os.O_WRONLY)
            self.path = path
        except OSError as error:
            logger.debug("no pids cgroup: %s", error)
            self.close()

    def join(self) -> None:  # runs in the child between fork and exec
        if self.fd is not None:
            os.write(self.fd, b"0")

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        if self.path is not None:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            self.path = None


def kill_group_members(group: PidsGroup) -> None:
    """Kill whatever is left in the program's cgroup (processes that left its session)."""
    if group.path is None:
        return
    for _ in range(20):
        try:
            pids = [int(p) for p in (group.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
