"""The program that runs inside the sandbox: `python -I _child.py JOB`.

Stand-alone on purpose (standard library and numpy only): the sandbox copies this file into the
program's private folder and runs it there. JOB is a pickle written by the trusted parent; the
child reads it and deletes it before any untrusted code runs.

What the child reports goes over its standard output, which the child takes for itself before
anything untrusted runs (the untrusted code's own prints go to /dev/null). Every message is one
line `NONCE <json>`; the parent validates the nonce, the order and the exact count, and treats
anything else as tampering. Only VALUES cross, encoded as plain data from objects of exact
builtin types (`encode`): never a verdict of the untrusted code, never a pickle. Expected values
never enter this process; the parent compares.

Modes:

- `groundtruth` (trusted canonical solutions only): outputs and call times, pickled to the file
  named in the job (EvalPlus's ground truth).
- `calls`: exec the candidate, call the entry point on each input under a per-input time limit
  (EvalPlus's `unsafe_execute`) and report each output, error or timeout; the parent applies
  EvalPlus's comparison.
- `tests`: exec the candidate, then each test program (asserts rewritten by the parent so that
  each assert reports the values of its operands through `__wc_check__`) in a namespace holding
  the candidate's names and a snapshot of the builtins taken before the candidate ran.

Before the candidate runs, the resource limits are set and EvalPlus's `reliability_guard`
disables destructive functions (a second line of defence behind the sandbox).
"""

# ruff: noqa: S102, BLE001
import builtins
import contextlib
import faulthandler
import io
import json
import os
import pickle
import platform
import signal
import sys
import time

_MAX_VALUE_CHARS = 8_000_000
_DETAIL = 300


class TimeoutException(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def handler(signum, frame):
        raise TimeoutException("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


class redirect_stdin(contextlib._RedirectStream):  # noqa: N801
    _stream = "stdin"


@contextlib.contextmanager
def swallow_io():
    stream = WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream), redirect_stdin(
        stream
    ):
        yield


def set_limits(limits):
    """Processes, CPU seconds, file size and memory (address space, data, stack)."""
    import resource

    def cap(kind, value):
        if value is None:
            return
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_NPROC, limits.get("processes"))
    cap(resource.RLIMIT_CPU, limits.get("cpu_s"))
    cap(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
    cap(resource.RLIMIT_CORE, 0)
    memory = limits.get("memory_bytes")
    if memory:
        cap(resource.RLIMIT_AS, memory)
        cap(resource.RLIMIT_DATA, memory)
        if platform.uname().system != "Darwin":
            cap(resource.RLIMIT_STACK, memory)


def reliability_guard():
    """EvalPlus's / human-eval's guard, verbatim in effect (memory limits are set above)."""
    faulthandler.disable()
    import builtins

    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in [
        "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
        "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
        "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir",
    ]:
        setattr(os, name, None)
    builtins.open = None
    import shutil

    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    import subprocess

    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None



class TestTimeout(BaseException):
    """A test ran past its time limit (BaseException: `except Exception` does not swallow it)."""


def _raise_test_timeout(signum, frame):
    raise TestTimeout


class NotPlain(Exception):
    pass


def encode(value, depth=0):
    """Plain data from an object of exact builtin type (JSON-able, tagged containers)."""
    if depth > 100:
        raise NotPlain("nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        if value.bit_length() > 4000:
            raise NotPlain("an int too large to transmit")
        return value
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = {list: "l", tuple: "t", set: "s", frozenset: "fs"}[kind]
        return {tag: [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    module = getattr(kind, "__module__", "")
    if module == "numpy" and kind.__name__ == "ndarray" and value.dtype.kind in "biufc":
        return {"nd": value.dtype.str, "v": encode(value.tolist(), depth + 1)}
    if module == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "biufc":
        return {"np": value.dtype.str, "v": encode(value.item(), depth + 1)}
    raise NotPlain(f"a {module}.{kind.__qualname__} object, not plain data")


def _detail(error):
    return f"{type(error).__name__}: {error}"[:_DETAIL]


class Channel:
    """Messages to the parent over the descriptor that was stdout (nonce, one JSON per line)."""

    def __init__(self, nonce):
        self._fd = os.dup(1)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
        self._prefix = nonce.encode("ascii") + b" "
        self._write, self._dumps = os.write, json.dumps
        self.count = 0

    def send(self, message):
        data = self._prefix + self._dumps(message).encode("utf-8") + b"\n"
        self.count += 1
        view = memoryview(data)
        while view:
            view = view[self._write(self._fd, view):]


def _value_message(value):
    try:
        text = json.dumps(encode(value))
    except (NotPlain, ValueError, RecursionError) as error:
        return {"x": str(error)[:_DETAIL]}
    if len(text) > _MAX_VALUE_CHARS:
        return {"x": "a value too large to transmit"}
    return {"v": json.loads(text)}


def run_calls(job, channel):
    """EvalPlus's `unsafe_execute`, reporting outputs instead of comparing them."""
    entry_point, inputs, limits = job["entry_point"], job["inputs"], job["time_limits"]
    snapshot = dict(builtins.__dict__)
    restore = builtins.__dict__.update  # the candidate may patch builtins; this code needs them
    exec_globals = {}
    try:
        with swallow_io():
            exec(job["code"], exec_globals)
            fn = exec_globals[entry_point]
    except BaseException as error:
        restore(snapshot)
        channel.send({"k": "code", "ok": False, "d": _detail(error)})
        return
    restore(snapshot)
    channel.send({"k": "code", "ok": True})
    for i, inp in enumerate(inputs):
        message = {"k": "out", "i": i}
        try:
            with time_limit(limits[i]), swallow_io():
                out = fn(*inp)
        except BaseException as error:
            restore(snapshot)
            message["e"] = "timeout" if isinstance(error, TimeoutException) else _detail(error)
        else:
            restore(snapshot)
            message.update(_value_message(out))
        channel.send(message)


def run_tests(job, channel):
    """The candidate once, then every test in its own namespace under its own time limit."""
    snapshot = dict(builtins.__dict__)
    restore = builtins.__dict__.update  # the answer may patch builtins; this code needs them
    signal.signal(signal.SIGALRM, _raise_test_timeout)
    arm = signal.setitimer
    test_time = job["test_time_s"]
    answer = {"__builtins__": dict(snapshot), "__name__": "__main__"}
    try:
        arm(signal.ITIMER_REAL, test_time)
        with swallow_io():
            exec(compile(job["code"], "<answer>", "exec"), answer)
        arm(signal.ITIMER_REAL, 0)
        restore(snapshot)
    except BaseException as error:
        arm(signal.ITIMER_REAL, 0)
        restore(snapshot)
        timed_out = isinstance(error, TestTimeout)
        channel.send({"k": "code", "ok": False, "d": "timeout" if timed_out else _detail(error)})
        return
    channel.send({"k": "code", "ok": True})
    send = channel.send
    for index in job["run"]:
        source = job["tests"][index]

        def check(check_id, thunk, index=index):
            values = thunk()
            restore(snapshot)
            send({"k": "v", "t": index, "a": check_id,
                  "v": [_value_message(value) for value in values]})

        names = {k: v for k, v in answer.items() if k != "__builtins__"}
        names.update({"__builtins__": dict(snapshot), "__wc_check__": check})
        send({"k": "begin", "t": index})
        status, detail = "ok", ""
        try:
            code = compile(source, f"<test {index}>", "exec")
            arm(signal.ITIMER_REAL, test_time)
            with swallow_io():
                exec(code, names)
            arm(signal.ITIMER_REAL, 0)
        except BaseException as error:
            arm(signal.ITIMER_REAL, 0)
            if isinstance(error, TestTimeout):
                status = "timeout"
            elif isinstance(error, AssertionError):
                status, detail = "assert", _detail(error)
            else:
                status, detail = "error", _detail(error)
        restore(snapshot)
        send({"k": "end", "t": index, "s": status, "d": detail})


def groundtruth(job):
    from copy import deepcopy

    exec_globals = {}
    exec(job["code"], exec_globals)
    fn = exec_globals[job["entry_point"]]
    outputs, times = [], []
    for inp in job["inputs"]:
        inp = deepcopy(inp)
        start = time.time()
        outputs.append(fn(*inp))
        times.append(time.time() - start)
    if job["output_not_none"]:
        outputs = [out is not None for out in outputs]
    return outputs, times


def main():
    job_path = sys.argv[1]
    with open(job_path, "rb") as handle:
        job = pickle.load(handle)
    os.unlink(job_path)
    if job["mode"] == "groundtruth":
        outputs, times = groundtruth(job)
        with open(job["result"], "wb") as handle:
            pickle.dump({"outputs": outputs, "times": times}, handle)
        return
    channel = Channel(job.pop("nonce"))
    if job["mode"] == "calls":
        import numpy  # noqa: F401 - imported before the limits, as EvalPlus's parent has it
    set_limits(job["limits"])
    reliability_guard()
    if job["mode"] == "calls":
        run_calls(job, channel)
    else:
        run_tests(job, channel)
    channel.send({"k": "done", "n": channel.count + 1})
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
